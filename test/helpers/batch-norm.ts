/** Training-mode batch norm through model/layers.ts on one backend: what the kernel tests compare. */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { hasBatchNormKernels } from '../../src/engine/kernels/batch-norm-kernels.js';
import { batchNormTraining } from '../../src/model/layers.js';

export interface BatchNormCase {
  shape: [number, number, number, number];
  x: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  dy: Float32Array;
}

export const BATCH_NORM_OUTPUTS = ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'];

/** y, batch mean, batch variance, dx, dgamma, dbeta on `backend`, which must (or must not) have the BN kernels. */
export async function batchNormOutputs(backend: string, c: BatchNormCase, withKernels: boolean): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  expect(hasBatchNormKernels()).toBe(withKernels);
  const [x, g, b, dy] = [tf.tensor4d(c.x, c.shape), tf.tensor1d(c.gamma), tf.tensor1d(c.beta), tf.tensor4d(c.dy, c.shape)];
  let stats: tf.Tensor[] = [];
  const f = (a: tf.Tensor, cc: tf.Tensor, d: tf.Tensor) =>
    tf.sum(tf.mul(batchNormTraining(a as tf.Tensor4D, cc as tf.Tensor1D, d as tf.Tensor1D, (m, v) => (stats = [tf.keep(m.clone()), tf.keep(v.clone())])), dy));
  const y = tf.tidy(() => batchNormTraining(x, g, b));
  const grads = tf.grads(f)([x, g, b]);
  const out = [y, ...stats, ...grads];
  const values = await Promise.all(out.map(async (t) => Float32Array.from(await t.data())));
  tf.dispose([x, g, b, dy, ...out]);
  return values;
}
