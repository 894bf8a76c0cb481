import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectSameWeights } from '../helpers/weights.js';
import { childrenOf, start } from '../helpers/processes.js';
import { launch } from '../../cluster/coordinator.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';

/**
 * One `launch` agent per "node" (--nnodes), here both on this machine (node 0 at 127.0.0.1):
 * restarts span the agents. Across real network namespaces: two-nodes.test.ts.
 */
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'slfer-dist.js');
let data: Awaited<ReturnType<typeof syntheticDataset>>;
let file: string;
beforeAll(async () => {
  data = await syntheticDataset({ train: 32, test: 8, size: 32 });
  file = join(data.base, 'config.json');
  writeFileSync(file, JSON.stringify(tinyConfig(data.root, 32, { epochs: 3, batchSize: 4 })));
});
afterAll(() => data.cleanup());

const agent = (node: number, port: number, out: string) =>
  start(process.execPath, [BIN, 'launch', '--nnodes', '2', '--node-rank', String(node), '--nproc-per-node', '1', '--max-restarts', '1', '--rdzv-endpoint', `127.0.0.1:${port}`, '--config', file, '--out', out], { OMP_NUM_THREADS: '1' });

describe('launch --nnodes: one agent per node', () => {
  it("--max-restarts 1: a worker of node 1 SIGKILLed mid-run; node 1's agent starts it again as the next attempt, node 0 restarts its own, and the weights equal launch --workers 2", async () => {
    const whole = await launch({ config: tinyConfig(data.root, 32, { epochs: 3, batchSize: 4 }), workers: 2, out: join(data.base, 'whole') });
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const out = join(data.base, 'agents');
    const n0 = agent(0, port, out);
    const n1 = agent(1, port, join(data.base, 'node1'));
    const deadline = Date.now() + 120_000;
    while (!existsSync(join(out, 'checkpoints', 'epoch-0001')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const worker = childrenOf(n1.child.pid!);
    expect(worker, n1.text()).toHaveLength(1);
    process.kill(worker[0], 'SIGKILL');
    const [c0, c1] = await Promise.all([n0.exited, n1.exited]);
    expect(c0, n0.text()).toBe(0);
    expect(c1, n1.text()).toBe(0);
    expect(n1.text()).toContain('node 1: rank 1 was killed by SIGKILL; starting this node\'s workers again (restart 1 of 1)');
    expect(n1.text()).toContain('started ranks 1 (attempt 1)');
    const attempts = JSON.parse(readFileSync(join(out, 'attempts.json'), 'utf8')) as { outcome: string }[];
    expect(attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(existsSync(join(data.base, 'node1'))).toBe(false);
    expectSameWeights(whole.lastCheckpoint, out);
  }, 300_000);
});
