import * as tf from '@tensorflow/tfjs';
import { NUM_EXPRESSIONS, NUM_PARTS } from '../data/labels.js';
import type { Batch } from '../data/types.js';
import { selectBackend, type BackendRequest } from '../engine/backend.js';
import type { Variant } from '../model/config.js';
import { SlferModel } from '../model/slfer.js';
import { Rng } from '../util/rng.js';
import { Adam } from './adam.js';
import { computeGradients, finishStep, readLosses } from './step.js';

export interface BenchTrainOptions {
  backend: BackendRequest;
  size: number;
  batch: number;
  steps: number;
  warmup?: number;
  variant?: Variant;
  width?: number;
  /** Also time one step kernel by kernel (tf.profile: GPU timer queries on webgpu where the adapter has them). */
  profile?: boolean;
}

/** One kernel's share of a profiled step. */
export interface KernelTime {
  kernel: string;
  ms: number;
  calls: number;
}

export interface BenchTrainResult {
  backend: string;
  /** Why this engine, e.g. "requested; adapter NVIDIA H200 (...)": names the WebGPU adapter. */
  engine: string;
  /** wasm: what runs the convolutions (oneDNN native kernels or XNNPACK). */
  convolutions?: string;
  variant: Variant;
  width: number;
  size: number;
  batch: number;
  steps: number;
  trainImagesPerSec: number;
  msPerStep: number;
  forwardImagesPerSec: number;
  parameters: number;
  /** webgpu: slfer-dist's WGSL kernels in use. */
  slferKernels?: string[];
  /** With `profile`: time per kernel in one step, largest first. */
  kernels?: KernelTime[];
}

/** A batch of random images, labels, masks and component labels: what a benchmark step needs. */
export function randomBatch(rng: Rng, size: number, inputSize: number): Batch {
  const n = size * inputSize * inputSize;
  return {
    size,
    inputSize,
    images: Float32Array.from({ length: n * 3 }, () => rng.normal()),
    labels: Int32Array.from({ length: size }, () => rng.int(NUM_EXPRESSIONS)),
    masks: Uint8Array.from({ length: n }, () => rng.int(NUM_PARTS)),
    components: Float32Array.from({ length: size * NUM_PARTS }, () => rng.int(2)),
    ids: [],
    skipped: [],
    waitMs: 0,
  };
}

/**
 * Training throughput of the full model on one engine: the real step (forward, joint loss,
 * gradients, Adam, BN statistics) on a fixed random batch, timed after warm-up, so decoding is not
 * measured. Forward-only (inference) img/s is measured the same way.
 */
export async function benchTrain(o: BenchTrainOptions): Promise<BenchTrainResult> {
  const engine = await selectBackend(o.backend);
  const variant = o.variant ?? 'proposed';
  const width = o.width ?? 1;
  const model = new SlferModel({ variant, width, inputSize: o.size, seReduction: 16, numExpressions: NUM_EXPRESSIONS, numParts: NUM_PARTS }, 0);
  const adam = new Adam(model.store.params, { beta1: 0.5, beta2: 0.999, epsilon: 1e-8 });
  const batch = randomBatch(new Rng(0), o.batch, o.size);
  const step = async () => {
    const r = computeGradients(model, batch, { lambdaSeg: 0.5, lambdaCls: 0.5, topN: 4 });
    adam.apply(r.grads, 1e-4);
    finishStep(model, r.bnStats);
    for (const g of r.grads) g.dispose();
    await readLosses(r.losses);
  };
  try {
    for (let i = 0; i < (o.warmup ?? 2); i++) await step();
    const t0 = performance.now();
    for (let i = 0; i < o.steps; i++) await step();
    const trainMs = (performance.now() - t0) / o.steps;
    const kernels = o.profile ? await profileStep(step) : undefined;
    const images = tf.tensor4d(batch.images, [o.batch, o.size, o.size, 3]);
    const forward = async () => {
      const logits = tf.tidy(() => model.forward(images, { training: false }, 'expression').expression);
      await logits.data();
      logits.dispose();
    };
    await forward();
    const t1 = performance.now();
    for (let i = 0; i < o.steps; i++) await forward();
    const forwardMs = (performance.now() - t1) / o.steps;
    images.dispose();
    return {
      backend: engine.backend,
      engine: engine.reason,
      convolutions: engine.convolutions,
      slferKernels: engine.kernels,
      variant,
      width,
      size: o.size,
      batch: o.batch,
      steps: o.steps,
      trainImagesPerSec: (o.batch * 1000) / trainMs,
      msPerStep: trainMs,
      forwardImagesPerSec: (o.batch * 1000) / forwardMs,
      parameters: model.store.paramCount,
      kernels,
    };
  } finally {
    adam.dispose();
    model.dispose();
  }
}

/**
 * Where a step's time goes, per kernel: tfjs's profiler times every kernel the step runs with the
 * backend's timer (wasm and cpu: wall clock; webgpu: timestamp queries, or wall clock around a
 * synchronised kernel where the adapter has none). Profiling serialises the step, so the sum exceeds
 * an unprofiled step: read it as shares, not as img/s.
 */
async function profileStep(step: () => Promise<void>): Promise<KernelTime[]> {
  const info = await tf.profile(step);
  const byName = new Map<string, KernelTime>();
  for (const k of info.kernels) {
    const ms = await (k.kernelTimeMs as number | Promise<number | { error: string }>);
    const e = byName.get(k.name) ?? { kernel: k.name, ms: 0, calls: 0 };
    e.ms += typeof ms === 'number' ? ms : 0;
    e.calls++;
    byName.set(k.name, e);
  }
  return [...byName.values()].sort((a, b) => b.ms - a.ms);
}
