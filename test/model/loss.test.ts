import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { jointLoss, sigmoidBinaryCrossEntropySum, softmaxCrossEntropy } from '../../src/model/loss.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const close = (a: number, b: number, tol = 1e-5) => expect(Math.abs(a - b)).toBeLessThan(tol);

describe('expression loss L_EC (eq. 4)', () => {
  it('is the mean negative log-softmax of the true class', () => {
    const logits = tf.tensor2d([[1, 2, 3], [0, 0, 0]]);
    const labels = tf.tensor1d([2, 0], 'int32');
    // sample 0: -log(e^3 / (e^1+e^2+e^3)) = log(1 + e^-1 + e^-2); sample 1: log 3
    const expected = (Math.log(1 + Math.exp(-1) + Math.exp(-2)) + Math.log(3)) / 2;
    close(softmaxCrossEntropy(logits, labels).dataSync()[0], expected);
  });

  it('has gradient (softmax - onehot) / B with respect to the logits', () => {
    const logits = tf.tensor2d([[1, 2, 3], [0, 0, 0]]);
    const labels = tf.tensor1d([2, 0], 'int32');
    const g = tf.grad((x: tf.Tensor) => softmaxCrossEntropy(x as tf.Tensor2D, labels))(logits).arraySync() as number[][];
    const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
    const expected = [
      [Math.exp(1) / z / 2, Math.exp(2) / z / 2, (Math.exp(3) / z - 1) / 2],
      [(1 / 3 - 1) / 2, 1 / 6, 1 / 6],
    ];
    g.flat().forEach((v, i) => close(v, expected.flat()[i]));
  });
});

describe('component loss L_C (eq. 3)', () => {
  it('sums binary cross-entropy over parts and averages over samples', () => {
    const logits = tf.tensor2d([[0, 2], [-1, 0.5]]);
    const targets = tf.tensor2d([[1, 0], [0, 1]]);
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    const bce = (x: number, y: number) => -(y * Math.log(sig(x)) + (1 - y) * Math.log(1 - sig(x)));
    const expected = (bce(0, 1) + bce(2, 0) + bce(-1, 0) + bce(0.5, 1)) / 2;
    close(sigmoidBinaryCrossEntropySum(logits, targets).dataSync()[0], expected);
  });

  it('is finite for large logits and has gradient (sigmoid - y) / B', () => {
    const logits = tf.tensor2d([[80, -80]]);
    const targets = tf.tensor2d([[0, 1]]);
    close(sigmoidBinaryCrossEntropySum(logits, targets).dataSync()[0], 160, 1e-3);
    const g = tf.grad((x: tf.Tensor) => sigmoidBinaryCrossEntropySum(x as tf.Tensor2D, targets))(tf.tensor2d([[0.3, -1.2]])).dataSync();
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    close(g[0], sig(0.3) - 0);
    close(g[1], sig(-1.2) - 1);
  });
});

describe('segmentation loss L_S (eq. 2) and the joint loss (eq. 5)', () => {
  it('averages per-pixel cross-entropy over all pixels and weights the terms by λ1, λ2', () => {
    // 1 image, 1x2 pixels, 2 parts.
    const seg = tf.tensor4d([[[[2, 0], [0, 1]]]]);
    const masks = tf.tensor3d([[[0, 0]]], undefined, 'int32');
    const pixel = (a: number, b: number, y: number) => -Math.log(Math.exp(y === 0 ? a : b) / (Math.exp(a) + Math.exp(b)));
    const ls = (pixel(2, 0, 0) + pixel(0, 1, 0)) / 2;
    const ect = tf.tensor2d([[0, 0, 0, 0, 0, 0, 0]]);
    const lec = Math.log(7);
    const ctLogits = tf.tensor2d([[0, 0]]);
    const lc = 2 * Math.log(2);
    const terms = jointLoss(
      { expression: ect, segmentation: seg, components: ctLogits },
      { labels: tf.tensor1d([3], 'int32'), masks, components: tf.tensor2d([[1, 0]]) },
      { lambdaSeg: 0.5, lambdaCls: 0.25, topN: 4 },
    );
    close(terms.segmentation!.dataSync()[0], ls);
    close(terms.components!.dataSync()[0], lc);
    close(terms.expression.dataSync()[0], lec);
    close(terms.total.dataSync()[0], lec + 0.5 * ls + 0.25 * lc);
  });

  it('is L_EC alone when the model has no ST or CT head', () => {
    const terms = jointLoss({ expression: tf.tensor2d([[1, 0, 0, 0, 0, 0, 0]]) }, { labels: tf.tensor1d([0], 'int32') }, { lambdaSeg: 0.5, lambdaCls: 0.5, topN: 4 });
    expect(terms.segmentation).toBeUndefined();
    expect(terms.total.dataSync()[0]).toBe(terms.expression.dataSync()[0]);
  });
});
