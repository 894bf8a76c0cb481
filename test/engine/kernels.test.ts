import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerKernels, shippedKernel } from '../../src/engine/kernels/register.js';
import { resizeBilinearGradHost, upsample2xGradHost } from '../../src/engine/kernels/resize-bilinear-grad.js';
import { Rng } from '../../src/util/rng.js';
import { relErr } from '../helpers/numeric.js';

// This file checks the pure-wasm path (XNNPACK forward convolutions, host kernels); the oneDNN
// kernels that replace it where they are built are checked in native-kernels.test.ts.
process.env.SLFER_NATIVE = 'off';


const random = (shape: number[], seed: number, sparsity = 0) => {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => (rng.next() < sparsity ? 0 : rng.normal())), shape);
};

beforeAll(async () => {
  await tf.setBackend('cpu');
  registerKernels('cpu');
  await tf.setBackend('wasm');
  await tf.ready();
  registerKernels('wasm');
});

interface ConvCase {
  x: [number, number, number, number];
  k: number;
  cout: number;
  stride: number;
  pad: 'same' | 'valid' | number;
}

const CASES: ConvCase[] = [
  { x: [2, 9, 9, 3], k: 3, cout: 4, stride: 1, pad: 'same' },
  { x: [2, 9, 9, 3], k: 3, cout: 4, stride: 2, pad: 'same' },
  { x: [1, 10, 8, 5], k: 3, cout: 2, stride: 1, pad: 'valid' },
  { x: [3, 11, 11, 2], k: 3, cout: 3, stride: 2, pad: 'valid' },
  { x: [2, 12, 12, 3], k: 7, cout: 4, stride: 2, pad: 3 },
  { x: [2, 8, 8, 6], k: 1, cout: 5, stride: 2, pad: 0 },
];

describe('Conv2DBackpropFilter host kernel', () => {
  for (const c of CASES) {
    const label = `x ${c.x.join('x')}, ${c.k}x${c.k}, stride ${c.stride}, pad ${c.pad}`;
    for (const backend of ['cpu', 'wasm']) {
      it(`matches tfjs-backend-cpu's own kernel on ${backend}: ${label}`, async () => {
        const w: [number, number, number, number] = [c.k, c.k, c.x[3], c.cout];
        // Reference: the kernel tfjs-backend-cpu ships, called directly on cpu tensors.
        await tf.setBackend('cpu');
        const ref = shippedKernel(tf.Conv2DBackpropFilter, 'cpu');
        expect(ref).toBeDefined();
        const x = random(c.x, 1, 0.3);
        const yShape = tf.conv2d(x as tf.Tensor4D, tf.zeros(w) as tf.Tensor4D, c.stride, c.pad).shape;
        const dy = random(yShape, 2);
        const attrs = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', filterShape: w };
        const info = ref!.kernelFunc({ inputs: { x, dy }, backend: tf.backend(), attrs: attrs as never }) as tf.TensorInfo;
        const expected = (tf.backend().readSync(info.dataId) as Float32Array).slice();
        // Ours, through autodiff of conv2d on the backend under test.
        const xv = x.dataSync().slice();
        const dyv = dy.dataSync().slice();
        await tf.setBackend(backend);
        const xb = tf.tensor4d(xv, c.x);
        const dyb = tf.tensor(dyv, yShape);
        const got = await tf.grad((ww: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xb, ww as tf.Tensor4D, c.stride, c.pad), dyb)))(tf.zeros(w)).data();
        expect(got.length).toBe(expected.length);
        expect(relErr(got, expected)).toBeLessThan(1e-4);
      });
    }
  }
});

describe('Conv2D input gradient through forward convolutions', () => {
  for (const c of CASES) {
    it(`matches tfjs-backend-cpu's Conv2DBackpropInput on wasm: x ${c.x.join('x')}, ${c.k}x${c.k}, stride ${c.stride}, pad ${c.pad}`, async () => {
      const w: [number, number, number, number] = [c.k, c.k, c.x[3], c.cout];
      await tf.setBackend('cpu');
      const x = random(c.x, 5);
      const filter = random(w, 6);
      const yShape = tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, c.stride, c.pad).shape;
      const dy = random(yShape, 7);
      const grad = (xx: tf.Tensor, ff: tf.Tensor, gg: tf.Tensor) => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(t as tf.Tensor4D, ff as tf.Tensor4D, c.stride, c.pad), gg)))(xx);
      const expected = await grad(x, filter, dy).data();
      const [xv, fv, dyv] = [x.dataSync().slice(), filter.dataSync().slice(), dy.dataSync().slice()];
      await tf.setBackend('wasm');
      const got = await grad(tf.tensor(xv, c.x), tf.tensor(fv, w), tf.tensor(dyv, yShape)).data();
      expect(relErr(got, expected)).toBeLessThan(1e-4);
    });
  }
});

describe('ResizeBilinearGrad host kernel', () => {
  for (const backend of ['cpu', 'wasm']) {
    for (const hp of [true, false]) {
      for (const ac of hp ? [false] : [false, true]) {
        it(`is the adjoint of ResizeBilinear on ${backend} (halfPixelCenters ${hp}, alignCorners ${ac})`, async () => {
          await tf.setBackend(backend);
          const x = random([2, 5, 7, 3], 3) as tf.Tensor4D;
          const size: [number, number] = [10, 13];
          const g = random([2, 10, 13, 3], 4);
          const up = (t: tf.Tensor) => tf.image.resizeBilinear(t as tf.Tensor4D, size, ac, hp);
          const lhs = tf.sum(tf.mul(up(x), g)).dataSync()[0];
          const adj = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(up(t), g)))(x);
          const rhs = tf.sum(tf.mul(x, adj)).dataSync()[0];
          expect(Math.abs(lhs - rhs) / Math.abs(lhs)).toBeLessThan(1e-5);
        });
      }
    }
  }
});

describe('ResizeBilinearGrad exact ×2 fast path', () => {
  for (const shape of [[2, 5, 7, 3], [1, 1, 1, 2], [3, 4, 2, 5]] as [number, number, number, number][]) {
    it(`equals the general scatter for ${shape.join('x')} → ×2 (halfPixelCenters)`, () => {
      const [b, h, w, c] = shape;
      const rng = new Rng(9);
      const dy = Float32Array.from({ length: b * 4 * h * w * c }, () => rng.normal());
      const fast = upsample2xGradHost(dy, shape);
      const general = resizeBilinearGradHost(dy, shape, [2 * h, 2 * w], false, true);
      expect(fast.length).toBe(general.length);
      expect(relErr(fast, general)).toBeLessThan(1e-6);
    });
  }

  it('is the adjoint of ResizeBilinear ×2 on wasm', async () => {
    await tf.setBackend('wasm');
    const x = random([2, 5, 7, 3], 5) as tf.Tensor4D;
    const g = random([2, 10, 14, 3], 6);
    const up = (t: tf.Tensor) => tf.image.resizeBilinear(t as tf.Tensor4D, [10, 14], false, true);
    const lhs = tf.sum(tf.mul(up(x), g)).dataSync()[0];
    const rhs = tf.sum(tf.mul(x, tf.grad((t: tf.Tensor) => tf.sum(tf.mul(up(t), g)))(x))).dataSync()[0];
    expect(Math.abs(lhs - rhs) / Math.abs(lhs)).toBeLessThan(1e-5);
  });
});
