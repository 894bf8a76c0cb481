import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Batch } from '../../src/data/types.js';
import { selectBackend } from '../../src/engine/backend.js';
import { SlferModel } from '../../src/model/slfer.js';
import { Adam } from '../../src/train/adam.js';
import { computeGradients, finishStep, readLosses } from '../../src/train/step.js';
import { Rng } from '../../src/util/rng.js';

const S = 32;
const B = 4;

function fixedBatch(seed: number): Batch {
  const rng = new Rng(seed);
  return {
    size: B,
    inputSize: S,
    images: Float32Array.from({ length: B * S * S * 3 }, () => rng.normal()),
    labels: Int32Array.from({ length: B }, (_, i) => i % 7),
    masks: Uint8Array.from({ length: B * S * S }, (_, i) => (i >> 5) % 8),
    components: Float32Array.from({ length: B * 8 }, (_, i) => (i % 3 === 0 ? 1 : 0)),
    ids: [],
    skipped: [],
    waitMs: 0,
  };
}

beforeAll(async () => {
  await selectBackend('wasm');
});

describe('training step', () => {
  it('keeps the live tensor count flat across steps', async () => {
    const model = new SlferModel({ variant: 'proposed', width: 0.125, inputSize: S, seReduction: 16, numExpressions: 7, numParts: 8 }, 0);
    const adam = new Adam(model.store.params, { beta1: 0.5, beta2: 0.999, epsilon: 1e-8 });
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = computeGradients(model, fixedBatch(i), { lambdaSeg: 0.5, lambdaCls: 0.5, topN: 4 });
      adam.apply(r.grads, 1e-3);
      finishStep(model, r.bnStats);
      r.grads.forEach((g) => g.dispose());
      await readLosses(r.losses);
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size).toBe(1);
    // Exactly the model's variables and Adam's two moments per parameter are alive.
    expect(counts[0]).toBe(model.store.params.length * 3 + model.store.buffers.length);
    model.dispose();
    adam.dispose();
  });

  it('gives a gradient for every parameter, in parameter order, and moves BN statistics', async () => {
    const model = new SlferModel({ variant: 'proposed', width: 0.125, inputSize: S, seReduction: 16, numExpressions: 7, numParts: 8 }, 0);
    const before = (await model.store.read()).buffers.map((b) => Array.from(b));
    const r = computeGradients(model, fixedBatch(1), { lambdaSeg: 0.5, lambdaCls: 0.5, topN: 4 });
    expect(r.grads.map((g) => g.shape)).toEqual(model.store.params.map((p) => p.shape));
    const norms = await Promise.all(r.grads.map((g) => tf.tidy(() => tf.norm(g)).data()));
    expect(norms.every((n) => Number.isFinite(n[0]))).toBe(true);
    expect(norms.filter((n) => n[0] > 0).length).toBeGreaterThan(norms.length * 0.9);
    finishStep(model, r.bnStats);
    r.grads.forEach((g) => g.dispose());
    await readLosses(r.losses);
    const after = (await model.store.read()).buffers.map((b) => Array.from(b));
    expect(after).not.toEqual(before);
    model.dispose();
  });

  it('drives the joint loss down on a fixed batch', async () => {
    const model = new SlferModel({ variant: 'proposed', width: 0.125, inputSize: S, seReduction: 16, numExpressions: 7, numParts: 8 }, 0);
    const adam = new Adam(model.store.params, { beta1: 0.5, beta2: 0.999, epsilon: 1e-8 });
    const losses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const r = computeGradients(model, fixedBatch(7), { lambdaSeg: 0.5, lambdaCls: 0.5, topN: 4 });
      adam.apply(r.grads, 3e-3);
      finishStep(model, r.bnStats);
      r.grads.forEach((g) => g.dispose());
      losses.push((await readLosses(r.losses)).total);
    }
    expect(losses[11]).toBeLessThan(losses[0] * 0.8);
    model.dispose();
    adam.dispose();
  });
});
