import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch } from '../../cluster/coordinator.js';
import { SlferError } from '../../src/errors.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';
import { alive, childrenOf } from '../helpers/processes.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'slfer-dist.js');
let data: Awaited<ReturnType<typeof syntheticDataset>>;

beforeAll(async () => {
  data = await syntheticDataset({ train: 56, test: 14, size: 40 });
});
afterAll(() => data.cleanup());

/** ‖a − b‖ / ‖b‖ over all tensors. */
function relativeDistance(a: Float32Array[], b: Float32Array[]): number {
  let num = 0;
  let den = 0;
  a.forEach((t, i) => {
    for (let k = 0; k < t.length; k++) {
      num += (t[k] - b[i][k]) ** 2;
      den += b[i][k] ** 2;
    }
  });
  return Math.sqrt(num / den);
}


describe('slfer-dist launch', () => {
  it('trains with 2 workers and writes the outputs of train plus per-rank timings', async () => {
    const r = await launch({ config: tinyConfig(data.root, 40, { epochs: 2, batchSize: 4 }), workers: 2, out: join(data.base, 'two') });
    expect(r.workers).toBe(2);
    expect(r.backend).toBe('wasm');
    for (const f of ['config.json', 'metrics.jsonl', 'report.json', 'timings.json', 'confusion-matrix.png', 'curves.png', 'curves.svg']) expect(existsSync(join(r.runDir, f)), f).toBe(true);
    expect(r.metrics.map((m) => [m.epoch, m.workers])).toEqual([
      [1, 2],
      [2, 2],
    ]);
    expect(r.timings.map((t) => `${t.epoch}/${t.rank}`)).toEqual(['1/0', '1/1', '2/0', '2/1']);
    expect(r.report.count).toBe(14);
    expect(loadCheckpoint(r.runDir).epoch).toBe(2);
  });

  it('gives the same weights with 2 workers at batch b as with 1 worker at batch 2b', async () => {
    const frozen = (batchSize: number) => {
      const c = tinyConfig(data.root, 40, { epochs: 1, batchSize });
      return { ...c, model: { ...c.model, batchNorm: 'frozen' as const } };
    };
    const two = await launch({ config: frozen(4), workers: 2, out: join(data.base, 'eq-two') });
    const one = await launch({ config: frozen(8), workers: 1, out: join(data.base, 'eq-one') });
    const a = loadCheckpoint(two.runDir);
    const b = loadCheckpoint(one.runDir);
    expect(a.step).toBe(7);
    expect(b.step).toBe(7);
    expect(relativeDistance(a.params, b.params)).toBeLessThan(1e-5);
    // Training moved the weights well beyond that, so the two runs did not merely stand still.
    const still = await launch({ config: { ...frozen(8), train: { ...frozen(8).train, lr: 1e-12 } }, workers: 1, out: join(data.base, 'eq-still') });
    expect(relativeDistance(loadCheckpoint(still.runDir).params, b.params)).toBeGreaterThan(1e-3);
  });

  it('refuses more GPUs than the machine has before starting anything', async () => {
    const err = await launch({ gpus: 4, config: tinyConfig(data.root, 40), out: join(data.base, 'gpus') }).catch((e: unknown) => e);
    expect((err as SlferError).code).toBe('SLFER_CLUSTER_DEVICES');
    expect(existsSync(join(data.base, 'gpus'))).toBe(false);
  });

  it('says clearly when its port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const err = await launch({ port, config: tinyConfig(data.root, 40), workers: 2, out: join(data.base, 'port') }).catch((e: unknown) => e);
      expect((err as SlferError).code).toBe('SLFER_CLUSTER_TRANSPORT');
      expect((err as SlferError).message).toContain(String(port));
    } finally {
      blocker.close();
    }
  });

  it('stops before training when a worker cannot load its engine, naming the rank and the reason', async () => {
    const c = tinyConfig(data.root, 40);
    const t0 = Date.now();
    const err = await launch({ config: { ...c, engine: { backend: 'tensorflow' } }, workers: 2, out: join(data.base, 'engine') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlferError);
    expect((err as SlferError).message).toMatch(/rank \d/);
    expect((err as SlferError).message).toContain('tensorflow');
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(existsSync(join(data.base, 'engine', 'metrics.jsonl'))).toBe(false);
  });

  it('ends the run within 10 s, non-zero, with no process left, when a worker is killed', async () => {
    const config = join(data.base, 'long.json');
    writeFileSync(config, JSON.stringify(tinyConfig(data.root, 40, { epochs: 200, batchSize: 4 })));
    const cli = spawn(process.execPath, [BIN, 'launch', '--workers', '2', '--config', config, '--out', join(data.base, 'killed')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => cli.on('exit', (code) => r(code)));
    // Wait until an epoch has been checkpointed, so "the last good checkpoint stays" can be checked.
    const deadline = Date.now() + 90_000;
    while (!existsSync(join(data.base, 'killed', 'checkpoints', 'latest.json')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const workers = childrenOf(cli.pid!);
    expect(workers).toHaveLength(2);
    const killedAt = Date.now();
    process.kill(workers[1], 'SIGKILL');
    const code = await exited;
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/SLFER_CLUSTER_WORKER_FAILED: worker rank \d was killed by SIGKILL/);
    for (const pid of workers) expect(alive(pid)).toBe(false);
    expect(loadCheckpoint(join(data.base, 'killed')).epoch).toBeGreaterThanOrEqual(1);
  });

  it('ends the run within 10 s when a worker stops answering (no heartbeat)', async () => {
    const config = join(data.base, 'long2.json');
    writeFileSync(config, JSON.stringify(tinyConfig(data.root, 40, { epochs: 200, batchSize: 4 })));
    const cli = spawn(process.execPath, [BIN, 'launch', '--workers', '2', '--config', config, '--out', join(data.base, 'hung')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => cli.on('exit', (code) => r(code)));
    const deadline = Date.now() + 90_000;
    while (!stderr.includes('epoch 1/200') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const workers = childrenOf(cli.pid!);
    const stoppedAt = Date.now();
    process.kill(workers[0], 'SIGSTOP');
    const code = await exited;
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
    expect(code).not.toBe(0);
    // Whoever notices first: the coordinator (no heartbeat) or the stopped rank's ring neighbour
    // (no answer to ZMTP heartbeats), which names the rank it lost.
    expect(stderr).toMatch(/SLFER_CLUSTER_HEARTBEAT_LOST|SLFER_CLUSTER_WORKER_FAILED|SLFER_CLUSTER_RING_UNUSABLE: .*the connection to rank \d was lost/);
    for (const pid of workers) expect(alive(pid)).toBe(false);
  });
});
