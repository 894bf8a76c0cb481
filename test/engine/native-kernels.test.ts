import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerKernels, shippedKernel } from '../../src/engine/kernels/register.js';
import { upsample2xGradHost } from '../../src/engine/kernels/resize-bilinear-grad.js';
import { loadNativeKernels } from '../../src/engine/native/addon.js';
import { Rng } from '../../src/util/rng.js';
import { BATCH_NORM_OUTPUTS, batchNormOutputs } from '../helpers/batch-norm.js';
import { relErr } from '../helpers/numeric.js';

// The native kernels the wasm engine uses where build/slfer-native.node is built (oneDNN
// convolutions, the ×2 upsampling gradient), checked against tfjs-backend-cpu's own kernels and
// slfer-dist's host kernel. CI builds them (.ci/run sets SLFER_REQUIRE_NATIVE=1), so
// there they must load; elsewhere the file runs only if they are built.
const native = loadNativeKernels();

it('the native kernels are built and load wherever they are required', () => {
  if (process.env.SLFER_REQUIRE_NATIVE === '1') expect(native.ok ? 'loaded' : native.reason).toBe('loaded');
  if (native.ok) expect(native.kernels.info()).toMatch(/^oneDNN \d+\.\d+\.\d+, \d+ threads?$/);
  // npm run test:sanitize: the build under test is the sanitized one, with ASan's runtime in the process.
  if (process.env.SLFER_SANITIZED === '1') {
    expect(native.ok && native.path).toBe(join(process.env.SLFER_NATIVE_DIR!, 'slfer-native.node'));
    expect(readFileSync('/proc/self/maps', 'utf8')).toMatch(/libasan\.so/);
  }
});


const values = (n: number, seed: number) => {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
};

interface Case {
  x: [number, number, number, number];
  k: number;
  cout: number;
  stride: number;
  pad: 'same' | 'valid' | number;
}

const CASES: Case[] = [
  { x: [2, 9, 9, 3], k: 3, cout: 4, stride: 1, pad: 'same' },
  { x: [2, 9, 9, 3], k: 3, cout: 4, stride: 2, pad: 'same' },
  { x: [2, 10, 10, 16], k: 3, cout: 32, stride: 2, pad: 'same' },
  { x: [1, 10, 8, 5], k: 3, cout: 2, stride: 1, pad: 'valid' },
  { x: [3, 11, 11, 2], k: 3, cout: 3, stride: 2, pad: 'valid' },
  { x: [2, 12, 12, 3], k: 7, cout: 64, stride: 2, pad: 3 },
  { x: [2, 8, 8, 64], k: 1, cout: 128, stride: 2, pad: 0 },
  { x: [2, 12, 12, 32], k: 3, cout: 32, stride: 1, pad: 1 },
  // Strided 1x1 on fewer channels than oneDNN's block, at odd batch sizes: the layer2 downsample of a
  // width-0.125 model, whose filter gradient oneDNN's jit_1x1 got wrong (uxlfoundation/oneDNN#6035).
  { x: [3, 16, 16, 8], k: 1, cout: 16, stride: 2, pad: 0 },
  { x: [15, 8, 8, 4], k: 1, cout: 8, stride: 2, pad: 0 },
];

describe.runIf(native.ok)('oneDNN convolutions on wasm', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    await tf.setBackend('wasm');
    await tf.ready();
    registerKernels('wasm');
  });

  /** Runs `kernel` on cpu (tfjs's shipped kernel) and on wasm (ours) with the same inputs. */
  async function both(kernel: string, inputs: Record<string, { shape: number[]; data: Float32Array }>, attrs: object) {
    const outs: Float32Array[] = [];
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      const ts = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, tf.tensor(v.data, v.shape)]));
      const config = backend === 'cpu' ? tf.getKernel(kernel, 'cpu')! : tf.getKernel(kernel, 'wasm')!;
      const info = config.kernelFunc({ inputs: ts, backend: tf.backend(), attrs: attrs as never }) as tf.TensorInfo;
      outs.push(Float32Array.from(tf.backend().readSync(info.dataId) as Float32Array));
      tf.backend().disposeData(info.dataId);
      tf.dispose(Object.values(ts));
    }
    return outs;
  }

  for (const c of CASES) {
    const label = `x ${c.x.join('x')}, ${c.k}x${c.k}x${c.cout}, stride ${c.stride}, pad ${c.pad}`;
    const w = [c.k, c.k, c.x[3], c.cout];
    const info = tf.backend_util.computeConv2DInfo(c.x, w as [number, number, number, number], c.stride, 1, c.pad);
    const xs = { shape: c.x, data: values(c.x.reduce((a, b) => a * b), 1) };
    const ws = { shape: w, data: values(w.reduce((a, b) => a * b), 2) };
    const dys = { shape: info.outShape, data: values(info.outShape.reduce((a, b) => a * b), 3) };
    const common = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC' };

    it(`Conv2D matches cpu: ${label}`, async () => {
      const [ref, got] = await both(tf.Conv2D, { x: xs, filter: ws }, { ...common, dilations: 1 });
      expect(got.length).toBe(ref.length);
      expect(relErr(got, ref)).toBeLessThan(1e-4);
    });
    it(`Conv2DBackpropInput matches cpu: ${label}`, async () => {
      const [ref, got] = await both(tf.Conv2DBackpropInput, { dy: dys, filter: ws }, { ...common, inputShape: c.x });
      expect(got.length).toBe(c.x.reduce((a, b) => a * b));
      expect(relErr(got, ref)).toBeLessThan(1e-4);
    });
    it(`Conv2DBackpropFilter matches cpu: ${label}`, async () => {
      const [ref, got] = await both(tf.Conv2DBackpropFilter, { x: xs, dy: dys }, { ...common, filterShape: w });
      expect(got.length).toBe(w.reduce((a, b) => a * b));
      expect(relErr(got, ref)).toBeLessThan(1e-4);
    });
  }

  it('replaced the XNNPACK Conv2D, and conv2d gradients through autodiff match cpu', async () => {
    expect(shippedKernel(tf.Conv2D, 'wasm')).toBeDefined();
    expect(tf.getKernel(tf.Conv2D, 'wasm')!.kernelFunc).not.toBe(shippedKernel(tf.Conv2D, 'wasm')!.kernelFunc);
    const c = CASES[2];
    const grads: Float32Array[][] = [];
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      const x = tf.tensor4d(values(2 * 10 * 10 * 16, 4), c.x);
      const f = tf.tensor4d(values(3 * 3 * 16 * 32, 5), [3, 3, 16, 32]);
      const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'))))([x, f]);
      grads.push([Float32Array.from(await gx.data()), Float32Array.from(await gf.data())]);
      tf.dispose([x, f, gx, gf]);
    }
    expect(relErr(grads[1][0], grads[0][0])).toBeLessThan(1e-4);
    expect(relErr(grads[1][1], grads[0][1])).toBeLessThan(1e-4);
  });

  it('keeps memory flat: no tensors or wasm allocations left behind across calls', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor4d(values(4 * 16 * 16 * 64, 6), [4, 16, 16, 64]);
    const f = tf.tensor4d(values(3 * 3 * 64 * 64, 7), [3, 3, 64, 64]);
    const step = () => tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same')))([x, f]).forEach((g) => g.dispose()));
    step();
    const before = tf.memory();
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
    tf.dispose([x, f]);
  });

  for (const shape of [[2, 5, 7, 3], [1, 1, 1, 2], [2, 16, 16, 64]] as [number, number, number, number][]) {
    it(`ResizeBilinearGrad ×2 (halfPixelCenters) in C equals the host kernel: ${shape.join('x')}`, async () => {
      await tf.setBackend('wasm');
      const [b, h, w, c] = shape;
      const dyv = values(b * 4 * h * w * c, 8);
      const x = tf.zeros(shape) as tf.Tensor4D;
      const dy = tf.tensor4d(dyv, [b, 2 * h, 2 * w, c]);
      const got = await tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeBilinear(t as tf.Tensor4D, [2 * h, 2 * w], false, true), dy)))(x).data();
      expect(relErr(got, upsample2xGradHost(dyv, shape))).toBeLessThan(1e-6);
      tf.dispose([x, dy]);
    });
  }

  for (const shape of [[2, 5, 7, 3], [4, 8, 8, 64], [1, 1, 1, 5]] as [number, number, number, number][]) {
    it(`batch norm forward, statistics and gradients in C match the op-based closed form on cpu: ${shape.join('x')}`, async () => {
      const C = shape[3];
      const xv = values(shape.reduce((a, b) => a * b), 10).map((v, i) => 3 * v + (i % C)); // per-channel offsets
      const gv = values(C, 11);
      const bv = values(C, 12);
      const c = { shape, x: xv, gamma: gv, beta: bv, dy: values(xv.length, 13) };
      const want = await batchNormOutputs('cpu', c, false);
      const got = await batchNormOutputs('wasm', c, true);
      want.forEach((ref, i) => expect(relErr(got[i], ref), BATCH_NORM_OUTPUTS[i]).toBeLessThan(1e-4));
    });
  }

  for (const [shape, k, stride, pad] of [
    [[2, 9, 9, 3], 3, 2, 1],
    [[2, 8, 8, 16], 2, 2, 'valid'],
    [[1, 7, 5, 4], 3, 1, 'same'],
  ] as [[number, number, number, number], number, number, number | 'same' | 'valid'][]) {
    it(`MaxPoolGrad in C matches cpu, ties included: ${shape.join('x')}, ${k}x${k}/${stride}, pad ${pad}`, async () => {
      // ReLU'd values rounded to a coarse grid: many windows hold tied maxima, as after the stem's ReLU.
      const xv = values(shape.reduce((a, b) => a * b), 14).map((v) => Math.max(0, Math.round(v * 2) / 2));
      const dyShape = tf.backend_util.computePool2DInfo(shape, k, stride, 1, pad).outShape;
      const dyv = values(dyShape.reduce((a, b) => a * b), 15);
      const [ref, got] = await both(tf.MaxPoolGrad, { dy: { shape: dyShape, data: dyv }, input: { shape, data: xv }, output: { shape: dyShape, data: new Float32Array(dyv.length) } }, { filterSize: k, strides: stride, pad });
      expect(got.length).toBe(xv.length);
      expect(relErr(got, ref)).toBeLessThan(1e-6);
    });
  }

  it('a strided 1x1 filter gradient on fewer channels than the block, at odd batch sizes, leaves the process heap intact', () => {
    // oneDNN's jit_1x1 backward-weights kernel wrote past its scratchpad here (glibc "corrupted
    // double-linked list" some calls later, or SIGSEGV at the scratchpad's guard page). Run in a child,
    // with allocations between calls, so a regression fails this test instead of killing the file.
    const script = `
      const { join } = require('node:path');
      const n = require(join(process.env.SLFER_NATIVE_DIR || join(process.cwd(), 'build'), 'slfer-native.node'));
      let kept = [];
      for (const C of [4, 8, 12]) for (const N of [1, 3, 15, 17]) for (let rep = 0; rep < 20; rep++) {
        const H = 16, OH = 8, OC = 16, xn = N * H * H * C, yn = N * OH * OH * OC, wn = C * OC;
        const heap = new ArrayBuffer(4 * (xn + yn + wn));
        new Float32Array(heap).fill(0.25);
        n.conv(2, heap, Float64Array.from([0, xn, 0, 4 * xn, yn, 0, 4 * (xn + yn), wn, 0]), Int32Array.from([N, H, H, C, 1, 1, OC, OH, OH, 2, 2, 1, 1, 0, 0, 0, 0]));
        const dw = new Float32Array(heap, 4 * (xn + yn), wn);
        if (dw.some((v) => Math.abs(v - N * OH * OH / 16) > 1e-3)) throw new Error('wrong filter gradient for C=' + C + ' N=' + N + ': ' + dw[0]);
        kept = Array.from({ length: 50 }, (_, i) => Buffer.alloc(64 + 24 * i));
      }
      console.log('ok', kept.length);`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect({ status: r.status, signal: r.signal, stderr: r.stderr.split('\n').slice(0, 3).join('\n') }).toEqual({ status: 0, signal: null, stderr: '' });
    expect(r.stdout.trim()).toBe('ok 50');
  });

  it('rejects NCHW with a message that says what to use', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 3, 4, 4]) as tf.Tensor4D;
    const f = tf.zeros([1, 1, 3, 2]) as tf.Tensor4D;
    expect(() => tf.conv2d(x, f, 1, 'same', 'NCHW')).toThrow(/NCHW.*use NHWC/);
    tf.dispose([x, f]);
  });
});
