import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../../util/package-root.js';

/** What build/slfer-native.node (native/slfer-native.c) exports. */
export interface NativeKernels {
  /**
   * One convolution on tensors in `heap` at byte offsets a, b, out. op 0: forward (x, filter → y),
   * 1: data gradient (dy, filter → dx), 2: filter gradient (x, dy → dfilter). dims: N H W C KH KW OC
   * OH OW strideH strideW dilationH dilationW padTop padLeft padBottom padRight.
   */
  conv(op: 0 | 1 | 2, heap: ArrayBuffer, a: number, b: number, out: number, dims: Int32Array): void;
  /** Gradient of exact ×2 half-pixel bilinear upsampling: dy [B, 2h, 2w, C] at dyOffset → dx [B, h, w, C] at dxOffset. */
  upsample2xGrad(heap: ArrayBuffer, dyOffset: number, dxOffset: number, batch: number, h: number, w: number, channels: number): void;
  /** Training batch norm over rows = N·H·W of [rows, C] at byte offsets: x, gamma, beta → y, mean, variance, rstd. */
  batchNormForward(heap: ArrayBuffer, x: number, gamma: number, beta: number, y: number, mean: number, variance: number, rstd: number, rows: number, channels: number, epsilon: number): void;
  /** Its gradient: dy, x, mean, rstd, gamma → dx, dgamma, dbeta. */
  batchNormBackward(heap: ArrayBuffer, dy: number, x: number, mean: number, rstd: number, gamma: number, dx: number, dgamma: number, dbeta: number, rows: number, channels: number): void;
  /** Max-pool gradient (NHWC) at byte offsets x, dy → dx; dims: N H W C OH OW strideH strideW kh kw padTop padLeft. */
  maxPoolGrad(heap: ArrayBuffer, x: number, dy: number, dx: number, dims: Int32Array): void;
  setThreads(n: number): void;
  /** "oneDNN 2.6.3, 2 threads" */
  info(): string;
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
  const path = join(packageRoot(import.meta.url), 'build', 'slfer-native.node');
  if (!existsSync(path)) {
    return (status = { ok: false, reason: `${path} is not built (needs a C compiler and oneDNN: apt-get install gcc libdnnl-dev; npm run build:native)` });
  }
  try {
    const kernels = createRequire(import.meta.url)(path) as NativeKernels;
    const threads = Number(process.env.OMP_NUM_THREADS);
    if (Number.isInteger(threads) && threads > 0) kernels.setThreads(threads);
    return (status = { ok: true, kernels, path });
  } catch (e) {
    return (status = { ok: false, reason: `${path} failed to load: ${(e as Error).message.split('\n')[0]}` });
  }
}
