/**
 * One rank of the all-reduce benchmark, run as a child process by benchAllReduce(). Its config is
 * argv[2] (JSON); it reports to the parent over the fork IPC channel:
 *   { type: 'result', rank, samplesMs }  after all timed repetitions (every rank sends one)
 *   { type: 'error', rank, error: WireError }  on any failure, then exits 1.
 */
import { errors } from '../../src/errors.js';
import { fromHalf, toHalf } from '../collective/fp16.js';
import { rendezvous } from '../collective/rendezvous.js';
import { Ring } from '../collective/ring.js';
import { rankMain } from './ranks.js';

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


/**
 * Small integers whose sums over up to `worldSize` ranks are exact in float32 and in fp16
 * (|partial sum| <= 1024), so the result can be checked for equality, element by element.
 */
function contribution(i: number, rank: number, worldSize: number): number {
  const span = 2 * Math.floor(1024 / worldSize);
  return ((i * 31 + rank * 17) % span) - span / 2;
}

/**
 * What one all-reduce makes of a buffer that is already identical on all N ranks: N equal
 * addends, so the ring's order of additions does not matter and the float32 result (and, with
 * fp16, its rounding at every hop) can be reproduced exactly here.
 */
function sumOfCopies(v: number, worldSize: number, fp16: boolean): number {
  const round = fp16 ? (x: number) => fromHalf(toHalf(x)) : Math.fround;
  let acc = round(v); // what the first rank sends
  for (let k = 1; k < worldSize; k++) acc = round(Math.fround(acc + v));
  return acc;
}

const fail = (rank: number, what: string, i: number, got: number, want: number) =>
  errors.clusterBenchFailed(`rank ${rank}, ${what}: element ${i} is ${got}, expected ${want}`);

/**
 * Warm-up repetitions (at least one) start from each rank's own contribution and are checked
 * against the exact sum. Timed repetitions then run back to back, as PyTorch's and nccl-tests'
 * loops do, each on the previous result (refilling 55 MB between them would time a cold cache,
 * not the all-reduce); the last result is checked against the same sequence computed here.
 */
async function main(cfg: WorkerConfig): Promise<number[]> {
  const ring = new Ring({ rank: cfg.rank, worldSize: cfg.worldSize, transport: cfg.transport, chunkBytes: cfg.chunkBytes, timeoutMs: cfg.timeoutMs });
  try {
    const endpoint = await ring.bind();
    const endpoints = await rendezvous(cfg.coordinator, { rank: cfg.rank, worldSize: cfg.worldSize, endpoint, timeoutMs: cfg.timeoutMs });
    await ring.connect(endpoints);

    const { rank, worldSize, compression } = cfg;
    const n = cfg.elements;
    const mine = new Float32Array(n);
    const expected = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      mine[i] = contribution(i, rank, worldSize);
      let sum = 0;
      for (let r = 0; r < worldSize; r++) sum += contribution(i, r, worldSize);
      expected[i] = sum;
    }
    const data = new Float32Array(n);
    for (let rep = 0; rep < Math.max(1, cfg.warmup); rep++) {
      data.set(mine);
      await ring.allReduce(data, { compression });
      for (let i = 0; i < n; i++) if (data[i] !== expected[i]) throw fail(rank, `warm-up ${rep}`, i, data[i], expected[i]);
    }

    const samples: number[] = [];
    for (let rep = 0; rep < cfg.reps; rep++) {
      await ring.barrier(); // start together, so a sample is one all-reduce, not a straggler's wait
      const t0 = performance.now();
      await ring.allReduce(data, { compression });
      samples.push(performance.now() - t0);
    }
    const fp16 = compression === 'fp16';
    for (let i = 0; i < n; i++) {
      let want = expected[i];
      for (let rep = 0; rep < cfg.reps; rep++) want = sumOfCopies(want, worldSize, fp16);
      if (!Object.is(data[i], want)) throw fail(rank, `after ${cfg.reps} timed repetitions`, i, data[i], want);
    }
    return samples;
  } finally {
    await ring.close();
  }
}

rankMain<WorkerConfig, number[]>(main);
