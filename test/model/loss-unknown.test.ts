import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNKNOWN_PART } from '../../src/data/labels.js';
import { releaseEngine, selectBackend } from '../../src/engine/backend.js';
import { jointLoss, segmentationLoss, softmaxCrossEntropy } from '../../src/model/loss.js';
import { Rng } from '../../src/util/rng.js';

// The ST loss with pixels no part could be assigned to (UNKNOWN_PART): they are left out of it,
// image by image, and with none of them the loss is the plain mean it always was, bit for bit.

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const J = 8;
const U = UNKNOWN_PART;

/** Logits [B, H, W, J] and labels [B, H, W] from a seeded stream; `unknown(b, k)` marks pixels unknown. */
function batch(seed: number, b: number, h: number, w: number, unknown: (b: number, k: number) => boolean = () => false) {
  const rng = new Rng(seed, 0, 0, 1);
  const logits = Float32Array.from({ length: b * h * w * J }, () => rng.next() * 6 - 3);
  const labels = Int32Array.from({ length: b * h * w }, (_, i) => (unknown(Math.floor(i / (h * w)), i % (h * w)) ? U : rng.int(J)));
  return { logits: tf.tensor4d(logits, [b, h, w, J]), masks: tf.tensor3d(labels, [b, h, w], 'int32'), raw: { logits, labels } };
}

/** −log softmax(x)[y] in float64. */
function pixelLoss(x: Float32Array, offset: number, y: number): number {
  let max = -Infinity;
  for (let c = 0; c < J; c++) max = Math.max(max, x[offset + c]);
  let z = 0;
  for (let c = 0; c < J; c++) z += Math.exp(x[offset + c] - max);
  return -(x[offset + y] - max - Math.log(z));
}

/** The reference: per image the mean over its known pixels (0 with none), then the mean over images. */
function expected(raw: { logits: Float32Array; labels: Int32Array }, b: number, k: number): number {
  let total = 0;
  for (let i = 0; i < b; i++) {
    let sum = 0;
    let known = 0;
    for (let p = 0; p < k; p++) {
      const y = raw.labels[i * k + p];
      if (y === U) continue;
      sum += pixelLoss(raw.logits, (i * k + p) * J, y);
      known++;
    }
    total += known > 0 ? sum / known : 0;
  }
  return total / b;
}

describe('ST loss with unknown pixels', () => {
  it('averages each image over its known pixels only, then over images', () => {
    // Image 0: a quarter unknown; image 1: all known; image 2: all but one pixel unknown.
    const unknown = (b: number, k: number) => (b === 0 ? k % 4 === 0 : b === 2 ? k !== 7 : false);
    const { logits, masks, raw } = batch(1, 3, 4, 5, unknown);
    const got = segmentationLoss(logits, masks).dataSync()[0];
    expect(got).toBeCloseTo(expected(raw, 3, 20), 5);
    // Counting the unknown pixels (as the plain mean over all pixels would) gives another value.
    const counted = softmaxCrossEntropy(tf.reshape(logits, [60, J]), tf.reshape(masks, [60]) as tf.Tensor1D).dataSync()[0];
    expect(Math.abs(got - counted)).toBeGreaterThan(0.1);
  });

  it('gives unknown pixels exactly zero gradient, and scales each image by 1 / (B · its known pixels)', () => {
    const unknown = (b: number, k: number) => b === 0 && k < 6;
    const { logits, masks, raw } = batch(2, 2, 3, 4, unknown);
    const g = tf.grad((x: tf.Tensor) => segmentationLoss(x as tf.Tensor4D, masks))(logits).dataSync();
    const k = 12;
    for (let i = 0; i < 2 * k; i++) {
      const y = raw.labels[i];
      const row = raw.logits.subarray(i * J, (i + 1) * J);
      const max = Math.max(...row);
      const z = row.reduce((s, v) => s + Math.exp(v - max), 0);
      const knownInImage = i < k ? k - 6 : k;
      for (let c = 0; c < J; c++) {
        const want = y === U ? 0 : (Math.exp(row[c] - max) / z - (c === y ? 1 : 0)) / (2 * knownInImage);
        if (y === U) expect(Math.abs(g[i * J + c])).toBe(0);
        else expect(g[i * J + c]).toBeCloseTo(want, 6);
      }
    }
  });

  it('is 0, not NaN, for a batch without a known pixel, and its gradient is 0', () => {
    const { logits, masks } = batch(3, 2, 2, 2, () => true);
    expect(Math.abs(segmentationLoss(logits, masks).dataSync()[0])).toBe(0); // −0 from the negation
    const g = tf.grad((x: tf.Tensor) => segmentationLoss(x as tf.Tensor4D, masks))(logits).dataSync();
    expect(g.every((v) => v === 0)).toBe(true);
  });

  it('with every pixel known, equals the plain mean over all pixels bit for bit, value and gradient', () => {
    const { logits, masks } = batch(4, 3, 8, 8);
    const plain = (x: tf.Tensor) => softmaxCrossEntropy(tf.reshape(x, [3 * 64, J]), tf.reshape(masks, [3 * 64]) as tf.Tensor1D);
    const ours = (x: tf.Tensor) => segmentationLoss(x as tf.Tensor4D, masks);
    expect(ours(logits).dataSync()[0]).toBe(plain(logits).dataSync()[0]);
    expect(Array.from(tf.grad(ours)(logits).dataSync())).toEqual(Array.from(tf.grad(plain)(logits).dataSync()));
  });

  it('stays a mean over samples: a batch split across two workers averages to the whole batch exactly', () => {
    // Workers weigh their losses and gradients by their sample counts (the ring divides by the total).
    const unknown = (b: number, k: number) => k < [0, 10, 3, 15][b];
    const whole = batch(5, 4, 4, 4, unknown);
    const part = (from: number, to: number) => ({
      logits: tf.slice(whole.logits, [from, 0, 0, 0], [to - from, -1, -1, -1]) as tf.Tensor4D,
      masks: tf.slice(whole.masks, [from, 0, 0], [to - from, -1, -1]) as tf.Tensor3D,
    });
    const a = part(0, 1);
    const b = part(1, 4);
    const lossOf = (p: { logits: tf.Tensor4D; masks: tf.Tensor3D }) => segmentationLoss(p.logits, p.masks).dataSync()[0];
    expect((1 * lossOf(a) + 3 * lossOf(b)) / 4).toBeCloseTo(lossOf(whole), 6);
    const gradOf = (p: { logits: tf.Tensor4D; masks: tf.Tensor3D }) => tf.grad((x: tf.Tensor) => segmentationLoss(x as tf.Tensor4D, p.masks))(p.logits).dataSync();
    const gWhole = gradOf(whole);
    const gSplit = [...Array.from(gradOf(a), (v) => (v * 1) / 4), ...Array.from(gradOf(b), (v) => (v * 3) / 4)];
    gSplit.forEach((v, i) => expect(v).toBeCloseTo(gWhole[i], 7));
  });

  it('is what jointLoss uses for L_S', () => {
    const { logits, masks } = batch(6, 2, 2, 2, (b, k) => b === 1 && k === 0);
    const terms = jointLoss(
      { expression: tf.zeros([2, 7]) as tf.Tensor2D, segmentation: logits },
      { labels: tf.tensor1d([0, 1], 'int32'), masks },
      { lambdaSeg: 0.5, lambdaCls: 0.5, topN: 4 },
    );
    expect(terms.segmentation!.dataSync()[0]).toBe(segmentationLoss(logits, masks).dataSync()[0]);
  });
});

// On webgpu (with slfer-dist's kernels) as on cpu: a bool-to-float cast there keeps its bool storage,
// which the engine's row sum read as zeros; the loss must not depend on it. Run as the webgpu tests
// are (SLFER_WEBGPU_TESTS=1 or SLFER_REQUIRE_WEBGPU=1: they need a Vulkan driver).
describe.runIf(process.env.SLFER_WEBGPU_TESTS === '1' || process.env.SLFER_REQUIRE_WEBGPU === '1')('ST loss with unknown pixels on webgpu', () => {
  beforeAll(async () => {
    await selectBackend('webgpu');
  });
  afterAll(async () => {
    await releaseEngine();
    await tf.setBackend('cpu');
  });

  it('has the value and gradient it has on cpu', async () => {
    const { raw } = batch(8, 2, 4, 4, (b, k) => (b === 0 ? k % 3 === 0 : k > 9));
    const on = async (backend: string) => {
      await tf.setBackend(backend);
      const logits = tf.tensor4d(raw.logits, [2, 4, 4, J]);
      const masks = tf.tensor3d(raw.labels, [2, 4, 4], 'int32');
      const value = (await segmentationLoss(logits, masks).data())[0];
      const grad = await tf.grad((x: tf.Tensor) => segmentationLoss(x as tf.Tensor4D, masks))(logits).data();
      return { value, grad };
    };
    const gpu = await on('webgpu');
    const cpu = await on('cpu');
    expect(gpu.value).toBeCloseTo(cpu.value, 5);
    expect(gpu.value).toBeCloseTo(expected(raw, 2, 16), 5);
    cpu.grad.forEach((v, i) => expect(gpu.grad[i]).toBeCloseTo(v, 6));
  });
});
