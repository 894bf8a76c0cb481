import { execFileSync } from 'node:child_process';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { benchAllReduce } from '../../cluster/bench/allreduce.js';
import { registerBenchAllReduce } from '../../cluster/bench/cli.js';
import { alive } from '../helpers/processes.js';

/** Processes whose parent is this test process, but for the `ps` that lists them (procps, Linux). */
const children = () =>
  execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, comm]) => Number(pid) > 0 && comm !== 'ps')
    .map(([pid]) => Number(pid));

describe('benchAllReduce (real worker processes)', () => {
  it.each(['tcp', 'ipc'] as const)('2 workers, 1 MB over %s: sane numbers, no process left', async (transport) => {
    const before = children();
    const r = await benchAllReduce({ workers: 2, megabytes: 1, transport, reps: 3, warmup: 1 });
    expect(r).toMatchObject({ workers: 2, bytes: 1_000_000, transport, compression: 'none' });
    expect(r.samplesMs).toHaveLength(3);
    expect(r.samplesMs.every((s) => s > 0 && s < 5000)).toBe(true);
    expect(r.msPerAllReduce).toBeGreaterThan(0);
    expect(r.algBwGBs).toBeCloseTo(1e6 / (r.msPerAllReduce / 1000) / 1e9, 6);
    expect(r.busBwGBs).toBeCloseTo(r.algBwGBs, 6); // 2(N-1)/N = 1 for N = 2
    expect(r.pids).toHaveLength(2);
    for (const pid of r.pids) expect(alive(pid), `worker ${pid} still running`).toBe(false);
    expect(children().filter((p) => !before.includes(p))).toEqual([]);
  });

  it('3 workers with fp16 on the wire check their (exact) results too', async () => {
    const r = await benchAllReduce({ workers: 3, megabytes: 0, elements: 100_003, transport: 'ipc', reps: 2, warmup: 0, compression: 'fp16', chunkBytes: 64 * 1024 });
    expect(r.busBwGBs).toBeCloseTo((r.algBwGBs * 4) / 3, 6);
    for (const pid of r.pids) expect(alive(pid)).toBe(false);
  });

  it('fails loudly when a worker fails, and leaves no process behind', async () => {
    const before = children();
    // A chunk of 2 bytes is refused by every worker's Ring: the bench must report it and clean up.
    await expect(benchAllReduce({ workers: 2, megabytes: 0.1, transport: 'tcp', reps: 1, warmup: 0, chunkBytes: 2 })).rejects.toMatchObject({
      code: 'SLFER_INVALID_ARGUMENT',
      message: expect.stringContaining('chunkBytes'),
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(children().filter((p) => !before.includes(p))).toEqual([]);
  });

  it('a worker killed mid-run fails the bench, and the other worker is killed too', async () => {
    const before = children();
    const running = benchAllReduce({ workers: 2, megabytes: 8, transport: 'tcp', reps: 1000, warmup: 0 });
    running.catch(() => {});
    let victims: number[] = [];
    for (let i = 0; i < 100 && victims.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
      victims = children().filter((p) => !before.includes(p));
    }
    expect(victims).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 500)); // well into the repetitions
    process.kill(victims[1], 'SIGKILL');
    await expect(running).rejects.toMatchObject({ code: 'SLFER_CLUSTER_BENCH_FAILED', message: expect.stringMatching(/was killed by SIGKILL before reporting/) });
    for (const pid of victims) expect(alive(pid)).toBe(false);
    expect(children().filter((p) => !before.includes(p))).toEqual([]);
  });

  it('registers `bench allreduce` on a commander program, with --json', async () => {
    const program = new Command('slfer-dist').exitOverride();
    registerBenchAllReduce(program);
    const bench = program.commands.find((c) => c.name() === 'bench')!;
    expect(bench.commands.map((c) => c.name())).toEqual(['allreduce']);
    let out = '';
    const write = process.stdout.write;
    process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
    try {
      await program.parseAsync(['node', 'slfer-dist', 'bench', 'allreduce', '--workers', '2', '--mb', '0.5', '--transport', 'ipc', '--reps', '2', '--warmup', '0', '--json']);
    } finally {
      process.stdout.write = write;
    }
    const r = JSON.parse(out) as { workers: number; bytes: number; transport: string; samplesMs: number[] };
    expect(r).toMatchObject({ workers: 2, bytes: 500_000, transport: 'ipc' });
    expect(r.samplesMs).toHaveLength(2);
  });
});
