import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../src/engine/backend.js';
import { channels } from '../../src/model/config.js';
import { SlferModel } from '../../src/model/slfer.js';
import { tsne2d } from '../../src/plot/tsne.js';

let model: SlferModel;
beforeAll(async () => {
  await selectBackend('cpu');
  model = new SlferModel({ variant: 'proposed', width: 0.125, inputSize: 32, seReduction: 16, numExpressions: 7, numParts: 8 }, 1);
});
afterAll(() => model.dispose());

describe("ECT's features", () => {
  it('are the FC-128 activations, leave the logits unchanged, and leak no tensor', async () => {
    const images = tf.randomNormal([3, 32, 32, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const [plain, withFeatures, features] = tf.tidy(() => {
      const a = model.forward(images, { training: false }, 'expression');
      const b = model.forward(images, { training: false }, 'expression', { ectFeatures: true });
      return [a.expression, b.expression, b.ectFeatures!];
    });
    expect(features.shape).toEqual([3, channels(128, 0.125)]);
    expect(Array.from(await withFeatures.data())).toEqual(Array.from(await plain.data()));
    // After the ReLU: no negative activation.
    expect(Math.min(...(await features.data()))).toBeGreaterThanOrEqual(0);
    tf.dispose([plain, withFeatures, features]);
    expect(tf.memory().numTensors).toBe(before);
    images.dispose();
  });
});

describe('t-SNE', () => {
  const rows = Array.from({ length: 30 }, (_, i) => Float64Array.from({ length: 8 }, (_, k) => (i < 15 ? 0 : 10) + Math.sin(i * 7 + k)));

  it('is deterministic for a seed and separates two far clusters', () => {
    const a = tsne2d(rows, { perplexity: 5, seed: 1, iterations: 200 });
    expect(tsne2d(rows, { perplexity: 5, seed: 1, iterations: 200 }).points).toEqual(a.points);
    expect(tsne2d(rows, { perplexity: 5, seed: 2, iterations: 200 }).points).not.toEqual(a.points);
    const centre = (ps: [number, number][]) => ps.reduce(([x, y], p) => [x + p[0] / ps.length, y + p[1] / ps.length], [0, 0]);
    const [c1, c2] = [centre(a.points.slice(0, 15)), centre(a.points.slice(15))];
    const spread = Math.max(...a.points.slice(0, 15).map((p) => Math.hypot(p[0] - c1[0], p[1] - c1[1])));
    expect(Math.hypot(c1[0] - c2[0], c1[1] - c2[1])).toBeGreaterThan(spread);
  });

  it('refuses a non-positive perplexity and too few points, as typed errors', () => {
    expect(() => tsne2d(rows, { perplexity: 0, seed: 1, iterations: 10 })).toThrow(expect.objectContaining({ code: 'SLFER_INVALID_ARGUMENT' }));
    expect(() => tsne2d(rows.slice(0, 2), { perplexity: 5, seed: 1, iterations: 10 })).toThrow(expect.objectContaining({ code: 'SLFER_INVALID_ARGUMENT' }));
  });
});
