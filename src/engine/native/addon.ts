import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { errors } from '../../errors.js';
import { nativeBuildDir } from './build-dir.js';

/**
 * What build/slfer-native.node (native/slfer-native.c) exports. Every kernel takes the wasm heap and,
 * per tensor, (byte offset, element count, dtype) from WasmHeap.describe; it checks them against the
 * shapes it is asked to compute and throws SLFER_NATIVE_KERNEL instead of touching memory outside.
 */
export interface NativeKernels {
  /**
   * One convolution. op 0: forward (x, filter → y), 1: data gradient (dy, filter → dx), 2: filter
   * gradient (x, dy → dfilter); tensors in that order. dims: N H W C KH KW OC OH OW strideH strideW
   * dilationH dilationW padTop padLeft padBottom padRight.
   */
  conv(op: 0 | 1 | 2, heap: ArrayBuffer, tensors: Float64Array, dims: Int32Array): void;
  /** Gradient of exact ×2 half-pixel bilinear upsampling: tensors dy [B, 2h, 2w, C], dx [B, h, w, C]. */
  upsample2xGrad(heap: ArrayBuffer, tensors: Float64Array, batch: number, h: number, w: number, channels: number): void;
  /** Training batch norm over rows = N·H·W of [rows, C]: tensors x, gamma, beta → y, mean, variance, rstd. */
  batchNormForward(heap: ArrayBuffer, tensors: Float64Array, rows: number, channels: number, epsilon: number): void;
  /** Its gradient: tensors dy, x, mean, rstd, gamma → dx, dgamma, dbeta. */
  batchNormBackward(heap: ArrayBuffer, tensors: Float64Array, rows: number, channels: number): void;
  /** Max-pool gradient (NHWC): tensors x, dy → dx; dims: N H W C OH OW strideH strideW kh kw padTop padLeft. */
  maxPoolGrad(heap: ArrayBuffer, tensors: Float64Array, dims: Int32Array): void;
  setThreads(n: number): void;
  /** "oneDNN 2.6.3, 2 threads" */
  info(): string;
}

/** The addon's functions, each turning a refusal (code SLFER_NATIVE_KERNEL) into a SlferError. */
function typedErrors(raw: NativeKernels): NativeKernels {
  const wrapped: Record<string, unknown> = {};
  // napi_define_properties makes them non-enumerable: Object.entries would see none.
  for (const name of Object.getOwnPropertyNames(raw)) {
    const fn = (raw as unknown as Record<string, (...a: unknown[]) => unknown>)[name];
    if (typeof fn !== 'function') continue;
    wrapped[name] = (...a: unknown[]) => {
      try {
        return fn(...a);
      } catch (e) {
        if ((e as { code?: string }).code === 'SLFER_NATIVE_KERNEL') throw errors.nativeKernel((e as Error).message, e);
        throw e;
      }
    };
  }
  return wrapped as unknown as NativeKernels;
}

export type NativeStatus = { ok: true; kernels: NativeKernels; path: string } | { ok: false; reason: string };

let status: NativeStatus | undefined;

/**
 * Loads the native kernels once. They are optional: `npm install` builds them where a C compiler and
 * oneDNN are present (scripts/build-native.mjs); SLFER_NATIVE=off turns them off.
 */
export function loadNativeKernels(): NativeStatus {
  if (status) return status;
  if (process.env.SLFER_NATIVE === 'off') return (status = { ok: false, reason: 'SLFER_NATIVE=off' });
  const path = join(nativeBuildDir(), 'slfer-native.node');
  if (!existsSync(path)) {
    return (status = { ok: false, reason: `${path} is not built (needs a C compiler and oneDNN: apt-get install gcc libdnnl-dev; npm run build:native)` });
  }
  try {
    const kernels = typedErrors(createRequire(import.meta.url)(path) as NativeKernels);
    const threads = Number(process.env.OMP_NUM_THREADS);
    if (Number.isInteger(threads) && threads > 0) kernels.setThreads(threads);
    return (status = { ok: true, kernels, path });
  } catch (e) {
    return (status = { ok: false, reason: `${path} failed to load: ${(e as Error).message.split('\n')[0]}` });
  }
}
