import { errors } from '../../src/errors.js';
import { compiledSibling } from '../../src/util/compiled-path.js';
import type { WorkerConfig } from './allreduce-worker.js';
import { runRanks } from './ranks.js';

/**
 * The all-reduce benchmark: N real worker processes on this machine, a ring over ZeroMQ, timings
 * as nccl-tests reports them (algBw = bytes / time; busBw = algBw * 2(N-1)/N, the per-link rate
 * that a ring needs, comparable across N). Each repetition starts from a barrier and its result is
 * checked on every rank, element by element.
 */

export interface BenchAllReduceOptions {
  workers: number;
  /** Buffer size in MB (10^6 bytes) of float32; `elements` overrides it. */
  megabytes: number;
  elements?: number;
  transport: 'tcp' | 'ipc';
  reps?: number;
  warmup?: number;
  compression?: 'none' | 'fp16';
  chunkBytes?: number;
  /** Per-message peer timeout inside the ring (default 30 s). */
  timeoutMs?: number;
  /** The whole run, from fork to the last exit (default: generous for the size). */
  deadlineMs?: number;
}

export interface BenchAllReduceResult {
  workers: number;
  bytes: number;
  transport: 'tcp' | 'ipc';
  compression: 'none' | 'fp16';
  /** Median over repetitions, measured on rank 0. */
  msPerAllReduce: number;
  algBwGBs: number;
  busBwGBs: number;
  samplesMs: number[];
  /** Worker process ids (all exited when this result is returned). */
  pids: number[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export async function benchAllReduce(opts: BenchAllReduceOptions): Promise<BenchAllReduceResult> {
  const workers = opts.workers;
  const reps = opts.reps ?? 10;
  const warmup = opts.warmup ?? 2;
  const compression = opts.compression ?? 'none';
  const elements = opts.elements ?? Math.round((opts.megabytes * 1e6) / 4);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  if (!Number.isInteger(workers) || workers < 1) throw errors.invalidArgument('--workers', `${workers} is not a positive integer`, 'pass 1 or more');
  if (!Number.isInteger(elements) || elements < 0) throw errors.invalidArgument('--mb', `${opts.megabytes} does not give a whole number of floats`, 'pass a size >= 0');
  if (!Number.isInteger(reps) || reps < 1 || !Number.isInteger(warmup) || warmup < 0) {
    throw errors.invalidArgument('--reps/--warmup', `${reps}/${warmup}`, 'reps >= 1 and warmup >= 0, integers');
  }
  if (opts.transport !== 'tcp' && opts.transport !== 'ipc') throw errors.invalidArgument('--transport', `"${String(opts.transport)}"`, 'use tcp or ipc');
  // Generous: start-up, filling and checking buffers, and 2 s per repetition per 100 MB per worker.
  const deadlineMs = opts.deadlineMs ?? 30_000 + (reps + warmup + 1) * workers * Math.max(1, (elements * 4) / 5e7) * 1000;

  const { results, pids } = await runRanks<WorkerConfig, number[]>(
    compiledSibling(import.meta.url, 'allreduce-worker.js'),
    workers,
    (rank, coordinator) => ({ rank, worldSize: workers, coordinator, elements, transport: opts.transport, compression, reps, warmup, chunkBytes: opts.chunkBytes, timeoutMs }),
    deadlineMs,
  );

  const samplesMs = results[0];
  const ms = median(samplesMs);
  const bytes = elements * 4;
  const algBwGBs = bytes / (ms / 1000) / 1e9;
  return {
    workers,
    bytes,
    transport: opts.transport,
    compression,
    msPerAllReduce: ms,
    algBwGBs,
    busBwGBs: (algBwGBs * 2 * (workers - 1)) / workers,
    samplesMs,
    pids,
  };
}
