import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, MaxPoolGradAttrs, TensorInfo } from '@tensorflow/tfjs';
import type { NativeKernels } from '../native/addon.js';
import { wasmHeap } from './wasm-heap.js';

/**
 * MaxPoolGrad for wasm in C, in place on the heap: tfjs-wasm's own took 120 ms for the stem's pool
 * at 128px, batch 16 (7% of a step). Same tie rule as tfjs-backend-cpu: the first maximum in the
 * window, row-major.
 */
export const nativeMaxPoolGradKernel = (native: NativeKernels): KernelConfig => ({
  kernelName: tf.MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs, backend }) => {
    const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
    const a = attrs as unknown as MaxPoolGradAttrs;
    if (input.dtype !== 'float32') throw new Error(`MaxPoolGrad on wasm: dtype ${input.dtype} is not supported; cast to float32`);
    const c = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
    const heap = wasmHeap(backend);
    const dx = heap.output(input.shape);
    if (tf.util.sizeFromShape(input.shape) === 0) return dx;
    const dims = Int32Array.from([
      c.batchSize, c.inHeight, c.inWidth, c.inChannels, c.outHeight, c.outWidth,
      c.strideHeight, c.strideWidth, c.effectiveFilterHeight, c.effectiveFilterWidth, c.padInfo.top, c.padInfo.left,
    ]); // prettier-ignore
    return heap.fill(dx, () => native.maxPoolGrad(heap.buffer(), heap.describe(input, dy, dx), dims));
  },
});
