import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { NativeKernels } from '../native/addon.js';
import { wasmHeap } from './wasm-heap.js';

/**
 * Training-mode batch norm as two kernels, so an engine can run it in one pass each way instead of
 * a dozen elementwise ops (on wasm, those took a third of a step once convolutions ran on oneDNN).
 *   forward:  x [N,H,W,C], gamma, beta → y, batch mean, batch variance (biased), rstd = (var + ε)^-½
 *   backward: dy, x, mean, rstd, gamma → dx, dgamma, dbeta (the closed form of model/layers.ts)
 * src/model/layers.ts uses them where the current backend has them registered.
 */
export const BATCH_NORM_FORWARD = 'SlferBatchNormForward';
export const BATCH_NORM_BACKWARD = 'SlferBatchNormBackward';

export function nativeBatchNormKernels(native: NativeKernels): KernelConfig[] {
  return [
    {
      kernelName: BATCH_NORM_FORWARD,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const { x, gamma, beta } = inputs as { x: TensorInfo; gamma: TensorInfo; beta: TensorInfo };
        const heap = wasmHeap(backend);
        const C = x.shape[3];
        const rows = x.shape[0] * x.shape[1] * x.shape[2];
        const outs = [heap.output(x.shape), heap.output([C]), heap.output([C]), heap.output([C])];
        return heap.fill(outs, () => native.batchNormForward(heap.buffer(), heap.describe(x, gamma, beta, ...outs), rows, C, (attrs as { epsilon: number }).epsilon));
      },
    },
    {
      kernelName: BATCH_NORM_BACKWARD,
      backendName: 'wasm',
      kernelFunc: ({ inputs, backend }) => {
        const { dy, x, mean, rstd, gamma } = inputs as Record<'dy' | 'x' | 'mean' | 'rstd' | 'gamma', TensorInfo>;
        const heap = wasmHeap(backend);
        const C = x.shape[3];
        const rows = x.shape[0] * x.shape[1] * x.shape[2];
        const outs = [heap.output(x.shape), heap.output([C]), heap.output([C])];
        return heap.fill(outs, () => native.batchNormBackward(heap.buffer(), heap.describe(dy, x, mean, rstd, gamma, ...outs), rows, C));
      },
    },
  ];
}

/** Whether the current backend runs batch norm with the two kernels above. */
export function hasBatchNormKernels(): boolean {
  return tf.getKernel(BATCH_NORM_FORWARD, tf.getBackend()) !== undefined;
}
