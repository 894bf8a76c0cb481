import * as tf from '@tensorflow/tfjs';
import type { KernelConfig } from '@tensorflow/tfjs';
import { conv2dBackpropFilterKernel } from './conv2d-backprop-filter.js';
import { resizeBilinearGradKernel } from './resize-bilinear-grad.js';
import { useConvGradViaForwardConv } from '../gradients/conv2d-grad.js';

/** The kernels a backend ships, kept before they are replaced, so tests can check ours against them. */
const shipped = new Map<string, KernelConfig>();

/** Kernels that slfer-dist replaces or adds, per backend. */
function replacementsFor(backendName: string): KernelConfig[] {
  switch (backendName) {
    case 'cpu':
      return [conv2dBackpropFilterKernel('cpu'), resizeBilinearGradKernel('cpu')];
    case 'wasm':
      return [conv2dBackpropFilterKernel('wasm'), resizeBilinearGradKernel('wasm')];
    default:
      return [];
  }
}

/** Backends whose Conv2D gradient is computed with forward convolutions (../gradients/conv2d-grad.ts). */
const CONV_GRAD_VIA_FORWARD = new Set(['wasm']);

/** Installs slfer-dist's kernels (and gradient rewrites) for a backend (idempotent). */
export function registerKernels(backendName: string): string[] {
  const installed: string[] = [];
  if (CONV_GRAD_VIA_FORWARD.has(backendName)) useConvGradViaForwardConv(backendName);
  for (const k of replacementsFor(backendName)) {
    const key = `${k.backendName}/${k.kernelName}`;
    const current = tf.getKernel(k.kernelName, k.backendName);
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
