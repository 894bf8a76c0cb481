import type { TensorInfo } from '@tensorflow/tfjs';

/**
 * How native kernels reach tfjs-backend-wasm's tensors: each lives at a byte offset in the wasm
 * heap, and the heap's ArrayBuffer goes to C as is, so nothing is copied.
 */
interface WasmBackend {
  dataIdMap: { get(id: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  wasm: { HEAPU8: Uint8Array };
}

export interface WasmHeap {
  /** A new float32 tensor in the heap (not initialised). */
  output(shape: number[]): TensorInfo;
  /** A tensor's byte offset in the heap. */
  offset(t: TensorInfo): number;
  /** The heap now. Read it after the last output(): an allocation can grow, and replace, it. */
  buffer(): ArrayBuffer;
}

export function wasmHeap(backend: unknown): WasmHeap {
  const b = backend as WasmBackend;
  return {
    output: (shape) => b.makeOutput(shape, 'float32'),
    offset: (t) => b.dataIdMap.get(t.dataId).memoryOffset,
    buffer: () => b.wasm.HEAPU8.buffer as ArrayBuffer,
  };
}
