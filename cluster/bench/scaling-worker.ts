/**
 * One rank of the scaling benchmark: the real training step of the full model on a fixed random
 * batch, gradients averaged over the ring as in `launch`, timed after warm-up.
 */
import { NUM_EXPRESSIONS, NUM_PARTS } from '../../src/data/labels.js';
import { selectBackend } from '../../src/engine/backend.js';
import { SlferModel } from '../../src/model/slfer.js';
import { Adam } from '../../src/train/adam.js';
import { randomBatch } from '../../src/train/bench-train.js';
import { computeGradients, finishStep, readLosses } from '../../src/train/step.js';
import { Rng } from '../../src/util/rng.js';
import { rendezvous } from '../collective/rendezvous.js';
import { Ring } from '../collective/ring.js';
import { RingGradientReducer } from '../gradient-reducer.js';
import { rankMain } from './ranks.js';
import type { BenchScalingOptions } from './scaling.js';

/** One rank's share of the benchmark: its place in the ring and the options of benchScaling. */
export type ScalingRankConfig = Omit<BenchScalingOptions, 'workers' | 'out'> & { rank: number; worldSize: number; coordinator: string };

export interface ScalingRankResult {
  backend: string;
  seconds: number;
  computeMs: number;
  reduceMs: number;
}

rankMain<ScalingRankConfig, ScalingRankResult>(async (c) => {
  const engine = await selectBackend(c.backend);
  const ring = new Ring({ rank: c.rank, worldSize: c.worldSize, transport: c.transport });
  const endpoints = await rendezvous(c.coordinator, { rank: c.rank, worldSize: c.worldSize, endpoint: await ring.bind() });
  await ring.connect(endpoints);
  const model = new SlferModel({ variant: c.variant, width: c.width, inputSize: c.size, seReduction: 16, numExpressions: NUM_EXPRESSIONS, numParts: NUM_PARTS }, 0);
  const adam = new Adam(model.store.params, { beta1: 0.5, beta2: 0.999, epsilon: 1e-8 });
  const reducer = new RingGradientReducer(ring, model.store.params.map((p) => p.shape), 25 * 1024 * 1024);
  const batch = randomBatch(new Rng(c.rank), c.batch, c.size);
  let computeMs = 0;
  let reduceMs = 0;
  let t0 = 0;
  for (let i = 0; i < c.warmup + c.steps; i++) {
    if (i === c.warmup) {
      await ring.barrier();
      t0 = performance.now();
      computeMs = reduceMs = 0;
    }
    const tc = performance.now();
    const r = computeGradients(model, batch, { lambdaSeg: 0.5, lambdaCls: 0.5, topN: 4 });
    await readLosses(r.losses);
    const tr = performance.now();
    const grads = c.worldSize > 1 ? (await reducer.reduce(r.grads, c.batch)).grads : r.grads;
    const ta = performance.now();
    adam.apply(grads, 1e-4);
    for (const g of grads) g.dispose();
    finishStep(model, r.bnStats);
    computeMs += tr - tc + (performance.now() - ta);
    reduceMs += ta - tr;
  }
  const seconds = (performance.now() - t0) / 1000;
  adam.dispose();
  model.dispose();
  await ring.close();
  return { backend: engine.backend, seconds, computeMs, reduceMs };
});
