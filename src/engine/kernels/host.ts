import type * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';

/**
 * Kernels written in plain TypeScript run on any backend whose tensors live in host memory (cpu,
 * wasm): read inputs with readSync, hand the result back as a new tensor. The two backends name
 * the "new tensor from values" call differently.
 */
interface HostBackend {
  readSync(dataId: object): tf.backend_util.BackendValues;
  typedArrayFromHeap?(t: TensorInfo): tf.backend_util.TypedArray;
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): TensorInfo;
  makeOutput?(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): TensorInfo;
}

export function readFloat32(backend: unknown, t: TensorInfo): Float32Array {
  return (backend as HostBackend).readSync(t.dataId) as Float32Array;
}

/**
 * A view of a float32 tensor without a copy where the backend allows it (wasm: its heap). Valid only
 * until the backend next allocates: read it fully before creating outputs.
 */
export function viewFloat32(backend: unknown, t: TensorInfo): Float32Array {
  const b = backend as HostBackend;
  return b.typedArrayFromHeap ? (b.typedArrayFromHeap(t) as Float32Array) : (b.readSync(t.dataId) as Float32Array);
}

export function outputFloat32(backend: unknown, shape: number[], values: Float32Array): TensorInfo {
  const b = backend as HostBackend;
  if (b.makeTensorInfo) return b.makeTensorInfo(shape, 'float32', values);
  if (b.makeOutput) return b.makeOutput(shape, 'float32', undefined, values);
  throw new Error('this backend cannot take tensors from host memory');
}
