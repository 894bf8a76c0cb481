import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it } from 'vitest';
import { SlferError } from '../../src/errors.js';
import { registerKernels } from '../../src/engine/kernels/register.js';
import { loadNativeKernels, type NativeKernels } from '../../src/engine/native/addon.js';
import { thrown } from '../helpers/thrown.js';

// Every entry point of the native kernels checks what it is handed before it touches memory: a
// mismatch is a SlferError (SLFER_NATIVE_KERNEL) naming the kernel and the shapes, and the heap is
// left as it was. Runs where the kernels are built (CI requires them).
const native = loadNativeKernels();

/** A heap of `floats` float32s filled with a pattern, to check that a refused call wrote nothing. */
function heapOf(floats: number) {
  const heap = new ArrayBuffer(4 * floats);
  new Float32Array(heap).forEach((_, i, a) => (a[i] = i % 7));
  const before = new Uint8Array(heap.slice(0));
  return { heap, untouched: () => Buffer.compare(Buffer.from(heap), Buffer.from(before)) === 0 };
}

/** (byte offset, elements, dtype code 0 = float32) per tensor, given as (float offset, elements). */
const tensors = (...ts: [number, number, number?][]) => Float64Array.from(ts.flatMap(([o, n, dtype]) => [4 * o, n, dtype ?? 0]));

// A 3x3 'same' convolution, 2x5x5x3 -> 2x5x5x4: x at 0, filter at 150, y at 258.
const X = 2 * 5 * 5 * 3;
const F = 3 * 3 * 3 * 4;
const Y = 2 * 5 * 5 * 4;
const dims = (over: Partial<Record<number, number>> = {}) => {
  const d = [2, 5, 5, 3, 3, 3, 4, 5, 5, 1, 1, 1, 1, 1, 1, 1, 1];
  for (const [i, v] of Object.entries(over)) d[Number(i)] = v!;
  return Int32Array.from(d);
};
const good = (): [number, number][] => [[0, X], [X, F], [X + F, Y]];

function refused(call: (k: NativeKernels, heap: ArrayBuffer) => void, floats = X + F + Y): SlferError {
  const { heap, untouched } = heapOf(floats);
  const e = thrown(() => call((native as { kernels: NativeKernels }).kernels, heap));
  expect(e).toBeInstanceOf(SlferError);
  expect(e.code).toBe('SLFER_NATIVE_KERNEL');
  expect(untouched()).toBe(true);
  return e;
}

describe.runIf(native.ok)('native kernels check their arguments', () => {
  it('a well-formed convolution runs (the control for the cases below)', () => {
    const { heap } = heapOf(X + F + Y);
    (native as { kernels: NativeKernels }).kernels.conv(0, heap, tensors(...good()), dims());
    expect(new Float32Array(heap, 4 * (X + F), Y).some((v, i) => v !== (X + F + i) % 7)).toBe(true);
  });

  const convCases: [string, (t: [number, number, number?][]) => [Float64Array, Int32Array], RegExp][] = [
    ['a tensor with fewer elements than its shape', (t) => { t[2] = [X + F, Y - 1]; return [tensors(...t), dims()]; }, /^native kernel refused its arguments: Conv2D: y has 199 elements but its shape needs 200 \(x 2x5x5x3, filter 3x3x3x4, y 2x5x5x4/],
    ['a tensor reaching past the heap', (t) => { t[2] = [X + F + 1, Y]; return [tensors(...t), dims()]; }, /Conv2D: y: bytes 1036\.\.1836 lie outside the 1832-byte heap/],
    ['a byte offset not 4-aligned', (t) => [Float64Array.from([2, X, 0, 4 * X, F, 0, 4 * (X + F), Y, 0]), dims()], /x: byte offset 2 is not 4-byte aligned/],
    ['a negative offset', (t) => { t[0] = [-1, X]; return [tensors(...t), dims()]; }, /x: byte offset -4 is not a non-negative integer/],
    ['a NaN element count', (t) => [Float64Array.from([0, NaN, 0, 4 * X, F, 0, 4 * (X + F), Y, 0]), dims()], /x: element count nan is not a non-negative integer/],
    ['an int32 tensor', (t) => { t[1] = [X, F, 1]; return [tensors(...t), dims()]; }, /filter has dtype code 1; this kernel takes float32 only/],
    ['an output size that does not follow from the pads', () => [tensors(...good()), dims({ 13: 0, 15: 0 })], /output size does not follow .* \(expected 3x5\) \(x 2x5x5x3, filter 3x3x3x4, y 2x5x5x4, strides 1,1, dilations 1,1, pads 0,1,0,1\)/],
    ['a zero stride', () => [tensors(...good()), dims({ 9: 0 })], /at least 1/],
    ['a negative pad', () => [tensors(...good()), dims({ 14: -1 })], /pads must not be negative/],
    ['a dimension too large to address', () => [tensors(...good()), dims({ 0: 2 ** 31 - 1 })], /x has 150 elements but its shape needs/],
  ];
  for (const [what, make, message] of convCases) {
    it(`Conv2D refuses ${what}, naming the kernel and the shapes, and writes nothing`, () => {
      const [t, d] = make(good());
      expect(refused((k, heap) => k.conv(0, heap, t, d)).message).toMatch(message);
    });
  }

  it('each convolution direction names its own kernel and tensors', () => {
    // dy (the output-sized tensor) is one element short.
    expect(refused((k, heap) => k.conv(1, heap, tensors([X + F, Y - 1], [X, F], [0, X]), dims())).message).toMatch(/Conv2DBackpropInput: dy has 199 elements/);
    expect(refused((k, heap) => k.conv(2, heap, tensors([0, X], [X + F, Y - 1], [X, F]), dims())).message).toMatch(/Conv2DBackpropFilter: dy has 199 elements/);
  });

  it('malformed calls are refused: wrong argument count, op, heap, tensor list or dims', () => {
    const k = (native as { kernels: NativeKernels }).kernels as unknown as Record<string, (...a: unknown[]) => void>;
    const { heap } = heapOf(X + F + Y);
    expect(thrown(() => k.conv(0, heap, tensors(...good()))).message).toMatch(/conv: expected 4 arguments, got 3/);
    expect(thrown(() => k.conv(3, heap, tensors(...good()), dims())).message).toMatch(/op = 3 is not an integer in 0\.\.2/);
    expect(thrown(() => k.conv(0, new Float32Array(4), tensors(...good()), dims())).message).toMatch(/heap must be an ArrayBuffer/);
    expect(thrown(() => k.conv(0, heap, tensors(...good()).subarray(3), dims())).message).toMatch(/Float64Array of 9/);
    expect(thrown(() => k.conv(0, heap, Float32Array.from(tensors(...good())), dims())).message).toMatch(/Float64Array of 9/);
    expect(thrown(() => k.conv(0, heap, tensors(...good()), dims().subarray(1))).message).toMatch(/dims must be an Int32Array of 17/);
    expect(thrown(() => k.setThreads(0)).message).toMatch(/setThreads: threads = 0/);
  });

  it('the ×2 upsampling gradient checks dy and dx against the batch, size and channels', () => {
    // dy [1, 4, 4, 2] = 32 floats at 0, dx [1, 2, 2, 2] = 8 floats at 32.
    expect(refused((k, heap) => k.upsample2xGrad(heap, tensors([0, 32], [32, 8]), 1, 2, 2, 3), 40).message).toMatch(
      /ResizeBilinearGrad \(x2\): dy has 32 elements but its shape needs 48 \(dy 1x4x4x3, dx 1x2x2x3\)/,
    );
    expect(refused((k, heap) => k.upsample2xGrad(heap, tensors([0, 32], [32, 8]), 1, 2, -2, 2), 40).message).toMatch(/width = -2 is not an integer/);
  });

  it('batch norm checks every statistic against the channel count, and epsilon', () => {
    // x and y: 6 rows x 4 channels; gamma, beta, mean, variance, rstd: 4 each.
    const bn = (gammaLength: number): [number, number][] => [[0, 24], [24, gammaLength], [28, 4], [32, 24], [56, 4], [60, 4], [64, 4]];
    expect(refused((k, heap) => k.batchNormForward(heap, tensors(...bn(3)), 6, 4, 1e-5), 68).message).toMatch(/SlferBatchNormForward: gamma has 3 elements but its shape needs 4 \(x \[6 rows, 4 channels\]\)/);
    expect(refused((k, heap) => k.batchNormForward(heap, tensors(...bn(4)), 6, 4, NaN), 68).message).toMatch(/epsilon must be a number/);
    const back: [number, number][] = [[0, 24], [24, 24], [48, 4], [52, 4], [56, 4], [60, 24], [84, 4], [88, 5]];
    expect(refused((k, heap) => k.batchNormBackward(heap, tensors(...back), 6, 4), 93).message).toMatch(/SlferBatchNormBackward: dbeta has 5 elements but its shape needs 4/);
    expect(refused((k, heap) => k.batchNormBackward(heap, tensors(...back), 2 ** 40, 2 ** 30), 93).message).toMatch(/rows x channels overflows|dy has 24 elements/);
  });

  it('MaxPoolGrad checks x, dy and dx against its dims, and pads inside the window', () => {
    // x, dx [1, 4, 4, 2] = 32 floats; dy [1, 2, 2, 2] = 8 floats; 2x2 windows, stride 2.
    const d = (pad: number) => Int32Array.from([1, 4, 4, 2, 2, 2, 2, 2, 2, 2, pad, pad]);
    expect(refused((k, heap) => k.maxPoolGrad(heap, tensors([0, 32], [32, 7], [40, 32]), d(0)), 72).message).toMatch(/MaxPoolGrad: dy has 7 elements but its shape needs 8 \(x 1x4x4x2, dy 1x2x2x2, window 2x2/);
    expect(refused((k, heap) => k.maxPoolGrad(heap, tensors([0, 32], [32, 8], [40, 32]), d(2)), 72).message).toMatch(/pads must be in 0\.\.window-1/);
  });

  it('through tfjs: a gradient whose dy does not fit its input shape is a typed error, not a stray write', async () => {
    await tf.setBackend('wasm');
    registerKernels('wasm');
    const dy = tf.zeros([1, 3, 3, 4]);
    const filter = tf.zeros([3, 3, 2, 4]);
    const kernel = tf.getKernel(tf.Conv2DBackpropInput, 'wasm')!;
    // inputShape says 8x8 (so dy should be 1x8x8x4 with 'same' padding): the attrs and the tensor disagree.
    const e = thrown(() => kernel.kernelFunc({ inputs: { dy, filter }, backend: tf.backend(), attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [1, 8, 8, 2] } as never }));
    expect(e.code).toBe('SLFER_NATIVE_KERNEL');
    expect(e.message).toMatch(/Conv2DBackpropInput: dy has 36 elements but its shape needs 256/);
    tf.dispose([dy, filter]);
  });
});
