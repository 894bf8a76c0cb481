import * as tf from '@tensorflow/tfjs';
import type { KernelConfig } from '@tensorflow/tfjs';
import { conv2dBackpropFilterKernel } from './conv2d-backprop-filter.js';
import { nativeResizeBilinearGradKernel, resizeBilinearGradKernel } from './resize-bilinear-grad.js';
import { useConvGradViaForwardConv } from '../gradients/conv2d-grad.js';
import { loadNativeKernels } from '../native/addon.js';
import { nativeBatchNormKernels } from './batch-norm-kernels.js';
import { nativeMaxPoolGradKernel } from './max-pool-grad.js';
import { onednnConvKernels } from './onednn-conv.js';
import { webgpuAdamKernel } from './webgpu-adam.js';
import { webgpuBatchNormKernels } from './webgpu-batch-norm.js';
import { webgpuConv2dBackpropFilterKernel } from './webgpu-conv2d-backprop-filter.js';
import type { WebgpuUtil } from './webgpu-program.js';
import { webgpuResizeBilinearGradKernel } from './webgpu-resize-bilinear-grad.js';
import { webgpuRowReduceKernels } from './webgpu-row-reduce.js';

/** The kernels a backend ships, kept before they are replaced, so tests can check ours against them. */
const shipped = new Map<string, KernelConfig>();

let native: KernelConfig[] | undefined;

/**
 * wasm kernels in C when the native kernels are built (../native/addon.ts): convolutions on oneDNN,
 * batch norm, the ×2 upsampling and max-pool gradients. Undefined without them.
 */
function nativeKernels(): KernelConfig[] | undefined {
  if (!native) {
    const n = loadNativeKernels();
    if (n.ok) {
      native = [...onednnConvKernels(n.kernels), nativeResizeBilinearGradKernel(n.kernels), nativeMaxPoolGradKernel(n.kernels), ...nativeBatchNormKernels(n.kernels)];
    }
  }
  return native;
}

/**
 * webgpu: WGSL kernels for what tfjs-backend-webgpu gets wrong (ResizeBilinearGrad) or runs slowly
 * (NCHW falls back to its own). SLFER_WEBGPU_KERNELS=tfjs keeps tfjs's slow ones, to compare.
 */
function webgpuKernels(util: WebgpuUtil): KernelConfig[] {
  const own = (name: string) => (shipped.get(`webgpu/${name}`) ?? tf.getKernel(name, 'webgpu'))?.kernelFunc;
  const fixes = [webgpuResizeBilinearGradKernel(util)];
  if (process.env.SLFER_WEBGPU_KERNELS === 'tfjs') return fixes;
  return [...fixes, webgpuConv2dBackpropFilterKernel(util, own(tf.Conv2DBackpropFilter)), ...webgpuBatchNormKernels(util), ...webgpuRowReduceKernels(util, own), webgpuAdamKernel(util)];
}

/** Kernels that slfer-dist replaces or adds, per backend. */
function replacementsFor(backendName: string, opts: RegisterOptions): KernelConfig[] {
  switch (backendName) {
    case 'cpu':
      return [conv2dBackpropFilterKernel('cpu'), resizeBilinearGradKernel('cpu')];
    case 'wasm':
      return nativeKernels() ?? [conv2dBackpropFilterKernel('wasm'), resizeBilinearGradKernel('wasm')];
    case 'webgpu':
      return opts.webgpuUtil ? webgpuKernels(opts.webgpuUtil) : [];
    default:
      return [];
  }
}

/**
 * Installs slfer-dist's kernels (and gradient rewrites) for a backend (idempotent). On wasm without
 * native kernels, the Conv2D gradient runs as forward convolutions (../gradients/conv2d-grad.ts),
 * since XNNPACK has only the forward; with them, tfjs's own gradient calls the native backprop kernels.
 */
export interface RegisterOptions {
  /** tfjs-backend-webgpu's `webgpu_util`, for slfer-dist's WGSL kernels (the caller has the module loaded). */
  webgpuUtil?: WebgpuUtil;
}

/** Per backend, the kernels of slfer-dist's own now registered (for the engine line and reports). */
const active = new Map<string, Set<string>>();

/** slfer-dist's kernels registered for a backend, by tfjs kernel name. */
export function slferKernels(backendName: string): string[] {
  return [...(active.get(backendName) ?? [])];
}

export function registerKernels(backendName: string, opts: RegisterOptions = {}): string[] {
  const installed: string[] = [];
  const mine = active.get(backendName) ?? new Set<string>();
  active.set(backendName, mine);
  if (backendName === 'wasm' && !nativeKernels()) useConvGradViaForwardConv(backendName);
  for (const k of replacementsFor(backendName, opts)) {
    const key = `${k.backendName}/${k.kernelName}`;
    const current = tf.getKernel(k.kernelName, k.backendName);
    mine.add(k.kernelName);
    if (current?.kernelFunc === k.kernelFunc) continue;
    if (current) {
      if (!shipped.has(key)) shipped.set(key, current);
      tf.unregisterKernel(k.kernelName, k.backendName);
    }
    tf.registerKernel(k);
    installed.push(k.kernelName);
  }
  return installed;
}

/** The backend's own kernel that registerKernels replaced, if any (the numerical reference). */
export function shippedKernel(kernelName: string, backendName: string): KernelConfig | undefined {
  return shipped.get(`${backendName}/${kernelName}`);
}
