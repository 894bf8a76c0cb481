import { fork, type ChildProcess } from 'node:child_process';
import { errors, SlferError, type SlferErrorCode } from '../../src/errors.js';
import { compiledSibling } from '../../src/util/compiled-path.js';
import { RING_EXEC_ARGV, ringProcessEnv } from '../collective/process-setup.js';
import { RendezvousServer } from '../collective/rendezvous.js';
import type { WorkerConfig, WorkerMessage } from './allreduce-worker.js';

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

  const entry = compiledSibling(import.meta.url, 'allreduce-worker.js');
  const server = new RendezvousServer({ worldSize: workers, timeoutMs: Math.max(timeoutMs, 30_000) });
  const coordinator = await server.bind();
  const children: ChildProcess[] = [];
  const exited: Array<Promise<void>> = [];
  const results = new Map<number, number[]>();
  let timer: NodeJS.Timeout | undefined;

  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (e: unknown) => reject(e);
      timer = setTimeout(() => fail(errors.clusterBenchFailed(`not finished after ${Math.round(deadlineMs / 1000)} s`)), deadlineMs);
      server.waitForRanks().catch(fail);
      for (let rank = 0; rank < workers; rank++) {
        const cfg: WorkerConfig = { rank, worldSize: workers, coordinator, elements, transport: opts.transport, compression, reps, warmup, chunkBytes: opts.chunkBytes, timeoutMs };
        // started as a training worker should be: see process-setup.ts
        const child = fork(entry, [JSON.stringify(cfg)], { execArgv: [...RING_EXEC_ARGV], env: ringProcessEnv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(child);
        exited.push(
          new Promise((done) => {
            child.once('exit', () => done());
            child.once('error', () => child.pid === undefined && done()); // never started: no exit event
          }),
        );
        child.on('error', (e) => fail(errors.clusterBenchFailed(`worker ${rank} could not run`, e)));
        child.on('message', (m: WorkerMessage) => {
          if (m.type === 'error') {
            fail(m.code ? new SlferError(m.code as SlferErrorCode, m.message, m.hint ?? '') : errors.clusterBenchFailed(`worker ${rank}: ${m.message}`));
          } else if (m.type === 'result') {
            results.set(m.rank, m.samplesMs);
            if (results.size === workers) resolve();
          }
        });
        child.on('exit', (code, signal) => {
          if (!results.has(rank)) fail(errors.clusterBenchFailed(`worker ${rank} (pid ${child.pid}) exited (${signal ?? `code ${code}`}) before reporting`));
        });
      }
    });
    // Workers exit on their own once done; give them a moment, then make sure.
    await Promise.race([Promise.all(exited), new Promise((r) => setTimeout(r, 5000).unref())]);
  } finally {
    clearTimeout(timer);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(exited);
    server.close();
  }

  const samplesMs = results.get(0)!;
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
    pids: children.map((c) => c.pid!),
  };
}
