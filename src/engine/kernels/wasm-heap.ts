import type { TensorInfo } from '@tensorflow/tfjs';

/**
 * How native kernels reach tfjs-backend-wasm's tensors: each lives at a byte offset in the wasm
 * heap, and the heap's ArrayBuffer goes to C as is, so nothing is copied. With it go, per tensor,
 * its offset, element count and dtype (`describe`), which the C side checks against the shapes it
 * was asked to compute before it touches a byte (native/slfer-native.c).
 */
interface WasmBackend {
  dataIdMap: { get(id: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  disposeData(id: object): boolean;
  wasm: { HEAPU8: Uint8Array };
}

/** tfjs dtypes as the native kernels number them (DTYPE_* in native/slfer-native.c). */
const DTYPE_CODES: Record<string, number> = { float32: 0, int32: 1, bool: 2, complex64: 3, string: 4 };

export interface WasmHeap {
  /** A new float32 tensor in the heap (not initialised). */
  output(shape: number[]): TensorInfo;
  /** A tensor's byte offset in the heap. */
  offset(t: TensorInfo): number;
  /** (byte offset, element count, dtype code) of each tensor, as the native kernels take them. */
  describe(...ts: TensorInfo[]): Float64Array;
  /** The heap now. Read it after the last output(): an allocation can grow, and replace, it. */
  buffer(): ArrayBuffer;
  /** Runs a native call that fills `outputs`; if it throws, frees them, so a refused call leaks nothing. */
  fill<T extends TensorInfo | TensorInfo[]>(outputs: T, call: () => void): T;
}

export function wasmHeap(backend: unknown): WasmHeap {
  const b = backend as WasmBackend;
  const offset = (t: TensorInfo) => {
    const data = b.dataIdMap.get(t.dataId);
    if (!data) throw new Error(`tensor ${t.shape.join('x')} is not in the wasm backend's heap`);
    return data.memoryOffset;
  };
  return {
    output: (shape) => b.makeOutput(shape, 'float32'),
    offset,
    describe: (...ts) =>
      Float64Array.from(ts.flatMap((t) => [offset(t), t.shape.reduce((n, d) => n * d, 1), DTYPE_CODES[t.dtype] ?? -1])),
    buffer: () => b.wasm.HEAPU8.buffer as ArrayBuffer,
    fill: (outputs, call) => {
      try {
        call();
      } catch (e) {
        for (const t of Array.isArray(outputs) ? outputs : [outputs]) b.disposeData(t.dataId);
        throw e;
      }
      return outputs;
    },
  };
}
