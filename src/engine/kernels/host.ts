import type * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';

/**
 * Kernels written in plain TypeScript run on any backend whose tensors live in host memory (cpu,
 * wasm): read inputs with readSync, hand the result back as a new tensor. The two backends name
 * the "new tensor from values" call differently.
 */
interface HostBackend {
  readSync(dataId: object): tf.backend_util.BackendValues;
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): TensorInfo;
  makeOutput?(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): TensorInfo;
}

export function readFloat32(backend: unknown, t: TensorInfo): Float32Array {
  return (backend as HostBackend).readSync(t.dataId) as Float32Array;
}

export function outputFloat32(backend: unknown, shape: number[], values: Float32Array): TensorInfo {
  const b = backend as HostBackend;
  if (b.makeTensorInfo) return b.makeTensorInfo(shape, 'float32', values);
  if (b.makeOutput) return b.makeOutput(shape, 'float32', undefined, values);
  throw new Error('this backend cannot take tensors from host memory');
}
