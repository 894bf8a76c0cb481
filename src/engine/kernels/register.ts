import * as tf from '@tensorflow/tfjs';
import type { KernelConfig } from '@tensorflow/tfjs';
import { conv2dBackpropFilterKernel } from './conv2d-backprop-filter.js';
import { resizeBilinearGradKernel } from './resize-bilinear-grad.js';

/** The kernels a backend ships, kept before they are replaced, so tests can check ours against them. */
const shipped = new Map<string, KernelConfig>();

/** Kernels that slfer-dist replaces or adds, per backend. */
function replacementsFor(backendName: string): KernelConfig[] {
  switch (backendName) {
    case 'cpu':
    case 'wasm':
      return [conv2dBackpropFilterKernel(backendName), resizeBilinearGradKernel(backendName)];
    default:
      return [];
  }
}

/** Installs slfer-dist's kernels for a backend (idempotent). */
export function registerKernels(backendName: string): string[] {
  const installed: string[] = [];
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
