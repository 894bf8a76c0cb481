import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectSameWeights } from '../helpers/weights.js';
import { childrenOf } from '../helpers/processes.js';
import { curveKeyPair, Dealer } from 'zeromq';
import { launch } from '../../cluster/coordinator.js';
import { readRunKey, writeRunKey } from '../../cluster/security/run-key.js';
import { runCli } from '../helpers/cli.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';

/**
 * A run with a key, attacked on every port it listens on while it trains: a client with another
 * key, a plaintext client speaking the run's own protocol, and random bytes. Each is refused or
 * ignored, and the run ends with the weights of an undisturbed one.
 */
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'slfer-dist.js');
let data: Awaited<ReturnType<typeof syntheticDataset>>;
let keyFile: string;
beforeAll(async () => {
  data = await syntheticDataset({ train: 32, test: 8, size: 32 });
  keyFile = join(data.base, 'run.key');
  writeRunKey(keyFile);
});
afterAll(() => data.cleanup());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** TCP ports these processes listen on (ss -ltnp). */
function listening(pids: number[]): number[] {
  const out = spawnSync('ss', ['-ltnpH'], { encoding: 'utf8' }).stdout;
  const ports = new Set<number>();
  for (const line of out.split('\n')) {
    const pid = /pid=(\d+)/.exec(line);
    const port = /:(\d+)\s/.exec(line);
    if (pid && port && pids.includes(Number(pid[1]))) ports.add(Number(port[1]));
  }
  return [...ports];
}

async function attack(port: number): Promise<void> {
  const endpoint = `tcp://127.0.0.1:${port}`;
  const run = readRunKey(keyFile);
  const stranger = curveKeyPair();
  // Another key, which knows the server's public key: ZAP refuses it (three times, logged once).
  for (let i = 0; i < 3; i++) {
    const d = new Dealer({ linger: 0, sendTimeout: 200, curveServerKey: run.publicKey, curvePublicKey: stranger.publicKey, curveSecretKey: stranger.secretKey });
    d.connect(endpoint);
    await d.send(pack({ type: 'register', rank: 1, worldSize: 2, endpoint: 'tcp://127.0.0.1:1', pid: 1, host: 'evil' })).catch(() => {});
    await sleep(100);
    d.close();
  }
  // Plaintext, speaking the run's own protocol: a heartbeat and a claim to have failed.
  const plain = new Dealer({ linger: 0, sendTimeout: 200 });
  plain.connect(endpoint);
  await plain.send(pack({ type: 'failed', rank: 0, error: { code: 'SLFER_INTERNAL', message: 'forged', hint: '' } })).catch(() => {});
  await sleep(100);
  plain.close();
  // Random bytes on the raw TCP port.
  await new Promise<void>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff)));
      setTimeout(() => s.destroy(), 100);
    });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
}

describe('a run with a key (CURVE on every socket)', () => {
  it('refuses a wrong key, ignores plaintext and garbage on every port it listens on, logs each once, and ends with the weights of an undisturbed run', async () => {
    const cfg = tinyConfig(data.root, 32, { epochs: 3, batchSize: 4 });
    const undisturbed = await launch({ config: cfg, workers: 2, authKey: keyFile, out: join(data.base, 'calm') });
    const file = join(data.base, 'config.json');
    writeFileSync(file, JSON.stringify(cfg));
    const cli = spawn(process.execPath, [BIN, 'launch', '--workers', '2', '--auth-key', keyFile, '--config', file, '--out', join(data.base, 'attacked')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
    let text = '';
    cli.stdout.on('data', (d: Buffer) => (text += d.toString()));
    cli.stderr.on('data', (d: Buffer) => (text += d.toString()));
    const exited = new Promise<number | null>((r) => cli.on('exit', (code) => r(code)));
    const deadline = Date.now() + 90_000;
    while (!text.includes('epoch 1/3') && Date.now() < deadline) await sleep(100);
    const pids = [cli.pid!, ...childrenOf(cli.pid!)];
    const ports = listening(pids);
    // The coordinator's control port and each rank's ring port.
    expect(ports.length, text).toBeGreaterThanOrEqual(3);
    for (const port of ports) await attack(port);
    const code = await exited;
    expect(code, text).toBe(0);
    // ZAP names the refused key once, however often it tried.
    const refusedKey = text.split('\n').filter((l) => /refused: .*key/i.test(l));
    expect(refusedKey.length, text).toBeGreaterThanOrEqual(1);
    expect(new Set(refusedKey).size).toBe(refusedKey.length);
    expect(text).not.toContain('forged');
    expectSameWeights(undisturbed.lastCheckpoint, join(data.base, 'attacked'));
  }, 240_000);

  it('a run across machines without a key refuses to start and names keygen; --auth-key with --insecure is refused', () => {
    const r = runCli(['launch', '--nnodes', '2', '--node-rank', '0', '--rdzv-endpoint', '10.9.8.7:29500', '--epochs', '1'], { timeoutMs: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/SLFER_SECURITY_REQUIRED/);
    expect(r.stderr).toMatch(/keygen/);
    expect(r.stderr).toMatch(/--insecure/);
    const both = runCli(['launch', '--workers', '1', '--auth-key', keyFile, '--insecure', '--epochs', '1'], { timeoutMs: 60_000 });
    expect(both.status).toBe(1);
    expect(both.stderr).toMatch(/--auth-key and --insecure/);
  });
});
