import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FailurePolicy } from '../../cluster/failure-policy.js';
import { WorkerGroup, type GroupOptions } from '../../cluster/worker-group.js';
import { readWorkerSpec, workerSpecEnv } from '../../cluster/worker-spec.js';
import { errors } from '../../src/errors.js';
import { alive } from '../helpers/processes.js';
import { thrown } from '../helpers/thrown.js';

const CHILD = join(import.meta.dirname, '../fixtures/processes/child.mjs');
const groupOf = (whats: string[], o: Partial<GroupOptions> = {}) => new WorkerGroup(whats.map((w) => ({ entry: CHILD, args: [w], env: process.env })), { output: 'tail', ...o });
const until = async (f: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!f() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return f();
};

describe('WorkerGroup: real child processes through the lifecycle', () => {
  it('goes INIT → STARTING → HEALTHY → STOPPING → SUCCEEDED when every worker exits 0, and refuses a step out of order', async () => {
    const g = groupOf(['exit0', 'message']);
    const messages: unknown[] = [];
    const exits: number[] = [];
    const g2 = new WorkerGroup([{ entry: CHILD, args: ['message'], env: process.env }], { output: 'tail', onMessage: (_, m) => messages.push(m), onExit: (r) => exits.push(r) });
    expect(g.state).toBe('INIT');
    expect(() => g.healthy()).toThrow(/INIT cannot become HEALTHY/);
    g.start();
    g2.start();
    expect(g.state).toBe('STARTING');
    g.healthy();
    expect(g.state).toBe('HEALTHY');
    expect(await g.stop(5000)).toBe('SUCCEEDED');
    expect(g.state).toBe('SUCCEEDED');
    expect(await until(() => messages.length === 1)).toBe(true);
    expect(messages[0]).toEqual({ hello: g2.pids[0] });
    // Exiting by itself while STARTING is reported: the caller decides what it means.
    expect(await until(() => exits.length === 1)).toBe(true);
    await g2.stop();
  });

  it('reports a worker that exits while the group runs, with its last words', async () => {
    const seen: { rank: number; how: string; lastWords: string[] }[] = [];
    const g = groupOf(['hang', 'exit3'], { onExit: (rank, how, lastWords) => seen.push({ rank, how, lastWords }) });
    g.start();
    g.healthy();
    expect(await until(() => seen.length === 1)).toBe(true);
    expect(seen[0]).toMatchObject({ rank: 1, how: 'exited with code 3' });
    expect(seen[0].lastWords).toEqual(['child exit3 started', 'something went wrong']);
    const pids = g.pids;
    expect(await g.stop()).toBe('FAILED');
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });

  it('stops a hung worker with SIGTERM and one that ignores it with SIGKILL, leaving no process behind', async () => {
    const exits: string[] = [];
    const g = groupOf(['hang', 'stubborn'], { onExit: (_, how) => exits.push(how) });
    g.start();
    expect(await until(() => g.lastWords(1).includes('child stubborn started'))).toBe(true);
    const pids = g.pids;
    const t0 = Date.now();
    expect(await g.stop(100)).toBe('FAILED');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3000); // the stubborn one waited out SIGTERM's grace
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(g.lastWords(1)).toContain('ignoring SIGTERM');
    expect(exits).toEqual([]); // exits while stopping are the stop's own, not failures
  });

});

describe('FailurePolicy: what a failure means for the run', () => {
  const exited = { kind: 'exited' as const, rank: 1, how: 'was killed by SIGKILL', lastWords: ['x'] };
  it('stops on anything with no restarts allowed (the default), with the failure as a typed error', () => {
    const d = new FailurePolicy().decide(exited, 0);
    expect(d.action).toBe('stop');
    expect(d.error.code).toBe('SLFER_CLUSTER_WORKER_FAILED');
    expect(new FailurePolicy().decide({ kind: 'silent', rank: 0, seconds: 6 }, 0).error.code).toBe('SLFER_CLUSTER_HEARTBEAT_LOST');
  });

  it('restarts a lost worker while restarts remain, never a config or data error, and never after Ctrl-C', () => {
    const p = new FailurePolicy(2);
    expect(p.decide(exited, 0).action).toBe('restart');
    expect(p.decide(exited, 1).action).toBe('restart');
    expect(p.decide(exited, 2).action).toBe('stop');
    const bad = p.decide({ kind: 'reported', rank: 0, error: errors.maskInvalid('/m.png', 'is odd') }, 0);
    expect(bad).toMatchObject({ action: 'stop', error: { code: 'SLFER_MASK_INVALID' } });
    expect(bad.error.message).toMatch(/^worker rank 0: mask \/m.png is odd/);
    expect(p.decide({ kind: 'aborted' }, 0)).toMatchObject({ action: 'stop', error: { code: 'SLFER_ABORTED' } });
  });
});

describe('the worker spec: one typed record, checked when the worker starts', () => {
  it('round-trips, with defaults filled', () => {
    const env = workerSpecEnv({ rank: 1, worldSize: 2, coordinator: 'tcp://127.0.0.1:5555', runDir: '/runs/a' });
    expect(readWorkerSpec(env)).toEqual({ rank: 1, worldSize: 2, coordinator: 'tcp://127.0.0.1:5555', runDir: '/runs/a', transport: 'tcp', host: '127.0.0.1', runId: 'local', attempt: 0, bucketBytes: 25 * 1024 * 1024, compression: 'none', heartbeatMs: 1000 });
  });

  it('names what is wrong: missing, not JSON, a bad field', () => {
    expect(thrown(() => readWorkerSpec({})).message).toContain('SLFER_WORKER_SPEC: is not set');
    expect(thrown(() => readWorkerSpec({ SLFER_WORKER_SPEC: '{rank' })).message).toContain('is not JSON');
    const e = thrown(() => readWorkerSpec({ SLFER_WORKER_SPEC: JSON.stringify({ rank: -1, worldSize: 2, coordinator: 'x', runDir: '/r' }) }));
    expect(e.code).toBe('SLFER_INVALID_ARGUMENT');
    expect(e.message).toContain('field "rank"');
  });
});
