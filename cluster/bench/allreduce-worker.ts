/**
 * One rank of the all-reduce benchmark, run as a child process by benchAllReduce(). Its config is
 * argv[2] (JSON); it reports to the parent over the fork IPC channel:
 *   { type: 'result', rank, samplesMs }  after all timed repetitions (every rank sends one)
 *   { type: 'error', rank, code, message, hint }  on any failure, then exits 1.
 */
import { errors, isSlferError } from '../../src/errors.js';
import { rendezvous } from '../collective/rendezvous.js';
import { Ring } from '../collective/ring.js';

export interface WorkerConfig {
  rank: number;
  worldSize: number;
  coordinator: string;
  elements: number;
  transport: 'tcp' | 'ipc';
  compression: 'none' | 'fp16';
  reps: number;
  warmup: number;
  chunkBytes?: number;
  timeoutMs: number;
}

export type WorkerMessage =
  | { type: 'result'; rank: number; samplesMs: number[] }
  | { type: 'error'; rank: number; code?: string; message: string; hint?: string };

/**
 * Small integers whose sums over up to `worldSize` ranks are exact in float32 and in fp16
 * (|partial sum| <= 1024), so the result can be checked for equality, element by element.
 */
function contribution(i: number, rank: number, worldSize: number): number {
  const span = 2 * Math.floor(1024 / worldSize);
  return ((i * 31 + rank * 17) % span) - span / 2;
}

async function main(cfg: WorkerConfig): Promise<number[]> {
  const ring = new Ring({ rank: cfg.rank, worldSize: cfg.worldSize, transport: cfg.transport, chunkBytes: cfg.chunkBytes, timeoutMs: cfg.timeoutMs });
  try {
    const endpoint = await ring.bind();
    const endpoints = await rendezvous(cfg.coordinator, { rank: cfg.rank, worldSize: cfg.worldSize, endpoint, timeoutMs: cfg.timeoutMs });
    await ring.connect(endpoints);

    const n = cfg.elements;
    const mine = new Float32Array(n);
    const expected = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      mine[i] = contribution(i, cfg.rank, cfg.worldSize);
      let sum = 0;
      for (let r = 0; r < cfg.worldSize; r++) sum += contribution(i, r, cfg.worldSize);
      expected[i] = sum;
    }
    const data = new Float32Array(n);
    const samples: number[] = [];
    for (let rep = 0; rep < cfg.warmup + cfg.reps; rep++) {
      data.set(mine);
      await ring.barrier(); // start together, so a sample is one all-reduce, not a straggler's wait
      const t0 = performance.now();
      await ring.allReduce(data, { compression: cfg.compression });
      const ms = performance.now() - t0;
      if (rep >= cfg.warmup) samples.push(ms);
      for (let i = 0; i < n; i++) {
        if (data[i] !== expected[i]) {
          throw errors.clusterBenchFailed(`rank ${cfg.rank}, repetition ${rep}: element ${i} is ${data[i]}, expected ${expected[i]}`);
        }
      }
    }
    return samples;
  } finally {
    await ring.close();
  }
}

const send = (m: WorkerMessage) => new Promise<void>((resolve) => process.send!(m, () => resolve()));

const cfg = JSON.parse(process.argv[2] ?? '{}') as WorkerConfig;
main(cfg).then(
  async (samplesMs) => {
    await send({ type: 'result', rank: cfg.rank, samplesMs });
    process.disconnect();
  },
  async (e: unknown) => {
    const m: WorkerMessage = isSlferError(e)
      ? { type: 'error', rank: cfg.rank, code: e.code, message: e.message, hint: e.hint }
      : { type: 'error', rank: cfg.rank, message: e instanceof Error ? (e.stack ?? e.message) : String(e) };
    if (process.connected) await send(m);
    process.exit(1);
  },
);
