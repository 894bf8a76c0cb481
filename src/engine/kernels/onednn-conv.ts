import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { NativeKernels } from '../native/addon.js';
import { wasmHeap } from './wasm-heap.js';

/**
 * Conv2D, Conv2DBackpropInput and Conv2DBackpropFilter for the wasm backend, run by oneDNN on the
 * tensors where they lie in the wasm heap (no copies). oneDNN's AVX2/AVX-512 kernels run 4-5x
 * XNNPACK's 128-bit wasm SIMD on the same core, and the gradients need no transposes, flips or
 * dilated copies. With these registered, tfjs's own Conv2D gradient (which calls the two backprop
 * kernels) is the one used.
 */
const FORWARD = 0;
const BACKWARD_DATA = 1;
const BACKWARD_FILTER = 2;

function dimsOf(c: tf.backend_util.Conv2DInfo): Int32Array {
  return Int32Array.from([
    c.batchSize, c.inHeight, c.inWidth, c.inChannels,
    c.filterHeight, c.filterWidth, c.outChannels, c.outHeight, c.outWidth,
    c.strideHeight, c.strideWidth, c.dilationHeight, c.dilationWidth,
    c.padInfo.top, c.padInfo.left, c.padInfo.bottom, c.padInfo.right,
  ]); // prettier-ignore
}

function checkFormat(kernel: string, dataFormat: string | undefined, ...ts: TensorInfo[]): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC') throw new Error(`${kernel} on wasm: dataFormat ${dataFormat} is not supported; use NHWC`);
  for (const t of ts) if (t.dtype !== 'float32') throw new Error(`${kernel} on wasm: dtype ${t.dtype} is not supported; cast to float32`);
}

function run(native: NativeKernels, op: number, backend: unknown, a: TensorInfo, b: TensorInfo, outShape: number[], c: tf.backend_util.Conv2DInfo): TensorInfo {
  const heap = wasmHeap(backend);
  const out = heap.output(outShape);
  if (tf.util.sizeFromShape(outShape) === 0) return out;
  if (a.shape.some((d) => d === 0) || b.shape.some((d) => d === 0)) {
    new Float32Array(heap.buffer(), heap.offset(out), tf.util.sizeFromShape(outShape)).fill(0);
    return out;
  }
  return heap.fill(out, () => native.conv(op as 0 | 1 | 2, heap.buffer(), heap.describe(a, b, out), dimsOf(c)));
}

export function onednnConvKernels(native: NativeKernels): KernelConfig[] {
  const conv2d: KernelFunc = ({ inputs, attrs, backend }) => {
    const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
    const a = attrs as unknown as tf.Conv2DAttrs;
    checkFormat('Conv2D', a.dataFormat, x, filter);
    const c = tf.backend_util.computeConv2DInfo(x.shape as never, filter.shape as never, a.strides, a.dilations, a.pad, a.dimRoundingMode, false, 'channelsLast');
    return run(native, FORWARD, backend, x, filter, c.outShape, c);
  };
  const backpropInput: KernelFunc = ({ inputs, attrs, backend }) => {
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const a = attrs as unknown as tf.Conv2DBackpropInputAttrs;
    checkFormat('Conv2DBackpropInput', a.dataFormat, dy, filter);
    const c = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as never, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
    return run(native, BACKWARD_DATA, backend, dy, filter, c.inShape, c);
  };
  const backpropFilter: KernelFunc = ({ inputs, attrs, backend }) => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
    checkFormat('Conv2DBackpropFilter', a.dataFormat, x, dy);
    const c = tf.backend_util.computeConv2DInfo(x.shape as never, a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
    return run(native, BACKWARD_FILTER, backend, x, dy, a.filterShape, c);
  };
  return [
    { kernelName: tf.Conv2D, backendName: 'wasm', kernelFunc: conv2d },
    { kernelName: tf.Conv2DBackpropInput, backendName: 'wasm', kernelFunc: backpropInput },
    { kernelName: tf.Conv2DBackpropFilter, backendName: 'wasm', kernelFunc: backpropFilter },
  ];
}
