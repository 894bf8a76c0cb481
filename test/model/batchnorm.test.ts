import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BN_EPSILON, batchNormTraining } from '../../src/model/layers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Training-mode BN written plainly, differentiated by tfjs's autodiff: the reference. */
function plainBatchNorm(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D): tf.Tensor4D {
  const { mean, variance } = tf.moments(x, [0, 1, 2]);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, BN_EPSILON))), gamma), beta);
}

describe('training-mode batch normalisation', () => {
  it('computes the same output and gradients as autodiff through tf.moments', () => {
    const x = tf.add(tf.mul(tf.randomNormal([3, 4, 5, 6], 0, 1, 'float32', 1), 3), 2) as tf.Tensor4D;
    const gamma = tf.randomNormal([6], 1, 0.3, 'float32', 2) as tf.Tensor1D;
    const beta = tf.randomNormal([6], 0, 0.3, 'float32', 3) as tf.Tensor1D;
    const g = tf.randomNormal([3, 4, 5, 6], 0, 1, 'float32', 4);
    const loss = (f: typeof plainBatchNorm) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor1D, c as tf.Tensor1D), g));
    const ours = tf.grads(loss(batchNormTraining))([x, gamma, beta]);
    const ref = tf.grads(loss(plainBatchNorm))([x, gamma, beta]);
    const close = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / Math.max(1e-6, tf.max(tf.abs(b)).dataSync()[0]);
    expect(close(batchNormTraining(x, gamma, beta), plainBatchNorm(x, gamma, beta))).toBeLessThan(1e-5);
    ours.forEach((t, i) => expect(close(t, ref[i])).toBeLessThan(1e-4));
  });

  it('reports the batch mean and biased variance', () => {
    const x = tf.tensor4d([1, 2, 3, 6], [2, 1, 2, 1]);
    let seen: number[] = [];
    batchNormTraining(x, tf.ones([1]) as tf.Tensor1D, tf.zeros([1]) as tf.Tensor1D, (m, v) => {
      seen = [m.dataSync()[0], v.dataSync()[0]];
    });
    expect(seen).toEqual([3, 3.5]);
  });
});
