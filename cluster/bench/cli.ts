import { Command, InvalidArgumentError, Option } from 'commander';
import { benchAllReduce, type BenchAllReduceResult } from './allreduce.js';

/**
 * `slfer-dist bench allreduce --workers N --mb S --transport tcp|ipc [--json]`.
 * registerBenchAllReduce(program) adds it under a `bench` command (made if missing); it can also be
 * given the `bench` command itself.
 */

const positiveInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};
const nonNegativeInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be an integer >= 0`);
  return n;
};
const nonNegative = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a number >= 0`);
  return n;
};

interface Flags {
  workers: number;
  mb: number;
  transport: 'tcp' | 'ipc';
  reps: number;
  warmup: number;
  compression: 'none' | 'fp16';
  chunkKb?: number;
  json?: boolean;
}

/** The SLFER gradient: 13,721,871 float32. */
const SLFER_GRADIENT_MB = 54.887484;

export function registerBenchAllReduce(parent: Command): Command {
  const bench =
    parent.name() === 'bench'
      ? parent
      : (parent.commands.find((c) => c.name() === 'bench') ?? parent.command('bench').description('measure parts of the distributed runtime'));
  return bench
    .command('allreduce')
    .description('time a ring all-reduce between worker processes on this machine (nccl-tests bandwidths)')
    .option('--workers <n>', 'worker processes', positiveInt('--workers'), 2)
    .option('--mb <size>', 'buffer size in MB of float32 (54.887484 = the SLFER gradient, 13,721,871 float32)', nonNegative('--mb'), SLFER_GRADIENT_MB)
    .addOption(new Option('--transport <kind>', 'ZeroMQ transport').choices(['tcp', 'ipc']).default('tcp'))
    .option('--reps <n>', 'timed repetitions', positiveInt('--reps'), 10)
    .option('--warmup <n>', 'untimed repetitions first', nonNegativeInt('--warmup'), 2)
    .addOption(new Option('--compression <kind>', 'wire format').choices(['none', 'fp16']).default('none'))
    .option('--chunk-kb <n>', 'pipeline chunk in KiB (default 1024)', positiveInt('--chunk-kb'))
    .option('--json', 'print the result as JSON')
    .action(async (f: Flags) => {
      const r = await benchAllReduce({
        workers: f.workers,
        megabytes: f.mb,
        transport: f.transport,
        reps: f.reps,
        warmup: f.warmup,
        compression: f.compression,
        chunkBytes: f.chunkKb === undefined ? undefined : f.chunkKb * 1024,
      });
      process.stdout.write(f.json ? `${JSON.stringify(r, null, 2)}\n` : formatBenchAllReduce(r));
    });
}

/** A small table for a terminal. */
export function formatBenchAllReduce(r: BenchAllReduceResult): string {
  const rows: Array<[string, string]> = [
    ['workers', String(r.workers)],
    ['transport', `${r.transport}${r.compression === 'fp16' ? ' (fp16 on the wire)' : ''}`],
    ['size', `${(r.bytes / 1e6).toFixed(1)} MB (${(r.bytes / 4).toLocaleString('en-US')} float32)`],
    ['time', `${r.msPerAllReduce.toFixed(1)} ms per all-reduce (median of ${r.samplesMs.length})`],
    ['algBw', `${r.algBwGBs.toFixed(2)} GB/s`],
    ['busBw', `${r.busBwGBs.toFixed(2)} GB/s`],
    ['samples', r.samplesMs.map((s) => s.toFixed(1)).join(' ') + ' ms'],
  ];
  return rows.map(([k, v]) => `${k.padEnd(10)} ${v}`).join('\n') + '\n';
}
