import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectSameWeights } from '../helpers/weights.js';
import { alive, start } from '../helpers/processes.js';
import { launch } from '../../cluster/coordinator.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';

/**
 * `slfer-dist launch` started once per rank by something else (plain SLFER_* variables, torchrun):
 * each process runs its rank, rank 0 hosts the coordinator, and the run equals one that launch
 * forked itself.
 */
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'slfer-dist.js');
let data: Awaited<ReturnType<typeof syntheticDataset>>;
let configFile: string;
beforeAll(async () => {
  data = await syntheticDataset({ train: 32, test: 8, size: 32 });
  configFile = join(data.base, 'config.json');
  writeFileSync(configFile, JSON.stringify(tinyConfig(data.root, 32, { epochs: 2, batchSize: 4 })));
});
afterAll(() => data.cleanup());

const freePort = () => 20_000 + Math.floor(Math.random() * 20_000);

/** OMP_NUM_THREADS as launch gives its own workers, so the weights can be compared bitwise. */
const cli = (args: string[], env: NodeJS.ProcessEnv) => start(process.execPath, [BIN, ...args], { OMP_NUM_THREADS: '1', ...env });
const rankEnv = (rank: number, port: number, extra: NodeJS.ProcessEnv = {}) => ({ SLFER_RANK: String(rank), SLFER_WORLD_SIZE: '2', SLFER_MASTER_ADDR: '127.0.0.1', SLFER_MASTER_PORT: String(port), ...extra });


let forkedRun: Promise<string> | undefined;
/** The same run, forked by launch itself: what every other way must reproduce bitwise. */
const forked = () => (forkedRun ??= launch({ config: tinyConfig(data.root, 32, { epochs: 2, batchSize: 4 }), workers: 2, out: join(data.base, 'forked') }).then((r) => r.lastCheckpoint));

describe('launch under an external launcher: one process per rank', () => {
  it('two processes with SLFER_RANK/SLFER_WORLD_SIZE end with the weights of `launch --workers 2`; only rank 0 writes a run folder; a process of another run is refused', async () => {
    const reference = await forked();
    const port = freePort();
    const out0 = join(data.base, 'ranks');
    const out1 = join(data.base, 'rank1-folder');
    const r0 = cli(['launch', '--config', configFile, '--out', out0], rankEnv(0, port));
    // Registers first, for another run: told so and refused, and the run is not disturbed.
    const intruder = cli(['launch', '--config', configFile, '--out', out1], rankEnv(1, port, { SLFER_RUN_ID: 'someone-else' }));
    expect(await intruder.exited).not.toBe(0);
    expect(intruder.text()).toMatch(/SLFER_CLUSTER_RANK_INVALID: rendezvous: registration for run "someone-else"/);
    const r1 = cli(['launch', '--config', configFile, '--out', out1], rankEnv(1, port));
    const [c0, c1] = await Promise.all([r0.exited, r1.exited]);
    expect(c0, r0.text()).toBe(0);
    expect(c1, r1.text()).toBe(0);
    expect(r0.text()).toMatch(/refused: pid \d+ on .*registration for run "someone-else"/);
    expect(r1.text()).toMatch(/rank 1 of 2 \(slfer, attempt 0\)/);
    expect(existsSync(out1)).toBe(false);
    expectSameWeights(reference, join(out0, 'checkpoints'));
  }, 240_000);

  it('when rank 0 is killed, rank 1 exits with the retryable code within 10 s, naming the lost coordinator', async () => {
    const port = freePort();
    const long = join(data.base, 'long.json');
    writeFileSync(long, JSON.stringify(tinyConfig(data.root, 32, { epochs: 100, batchSize: 4 })));
    const r0 = cli(['launch', '--config', long, '--out', join(data.base, 'killed0')], rankEnv(0, port));
    const r1 = cli(['launch', '--config', long, '--out', join(data.base, 'killed1')], rankEnv(1, port));
    const deadline = Date.now() + 120_000;
    while (!r0.text().includes('epoch 1/100') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const killedAt = Date.now();
    r0.child.kill('SIGKILL');
    const code = await r1.exited;
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(code, r1.text()).toBe(75);
    expect(r1.text()).toMatch(/SLFER_CLUSTER_HEARTBEAT_LOST: worker rank 1: lost the coordinator|SLFER_CLUSTER_RING_UNUSABLE: .*connection to rank 0 was lost/);
    expect(alive(r1.child.pid!)).toBe(false);
  }, 180_000);

  const torchrun = spawnSync('torchrun', ['--help'], { encoding: 'utf8' }).status === 0;
  // CI installs torchrun (python3-torch) and requires this test; elsewhere it skips without one.
  it('torchrun is there wherever the cluster tests are required', () => {
    if (process.env.SLFER_REQUIRE_CLUSTER === '1') expect(torchrun, 'torchrun (apt-get install python3-torch)').toBe(true);
  });
  it.skipIf(!torchrun)('torchrun --no-python --max-restarts 1: a rank SIGKILLed mid-run is restarted with the others, --resume auto continues, and the weights equal the uninterrupted run', async () => {
    const port = freePort();
    const out = join(data.base, 'torchrun');
    // torchrun 1.13 (Debian's) spells its flags with underscores.
    const args = ['--nnodes', '1', '--nproc_per_node', '2', '--max_restarts', '1', '--master_port', String(port), '--redirects', '1', '--tee', '2', '--no_python', process.execPath, BIN, 'launch', '--config', configFile, '--out', out, '--resume', 'auto'];
    const t = start('torchrun', args, { OMP_NUM_THREADS: '1' });
    let gone = false;
    void t.exited.then(() => (gone = true));
    const deadline = Date.now() + 150_000;
    const ckpts = join(out, 'checkpoints');
    while (!(existsSync(ckpts) && readdirSync(ckpts).some((f) => f.startsWith('epoch-'))) && !gone && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    // Rank 1's process: torchrun's child whose environment says RANK=1.
    const rank1 = spawnSync('pgrep', ['-f', `${BIN} launch --config ${configFile} --out ${out}`], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)
      .map(Number)
      .find((pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes('RANK=1'));
    expect(rank1, t.text()).toBeDefined();
    process.kill(rank1!, 'SIGKILL');
    const code = await t.exited;
    expect(code, t.text()).toBe(0);
    expect(t.text()).toMatch(/attempt 1\)/);
    const attempts = JSON.parse(readFileSync(join(out, 'attempts.json'), 'utf8')) as { outcome: string }[];
    expect(attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expectSameWeights(await forked(), join(out, 'checkpoints'));
  }, 300_000);
});
