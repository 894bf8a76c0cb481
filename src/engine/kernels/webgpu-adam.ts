import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { ADAM_UPDATE, type AdamUpdateAttrs } from './adam-update.js';
import { FlatProgram, type WebgpuBackend, type WebgpuUniform, type WebgpuUtil } from './webgpu-program.js';

/**
 * Adam for webgpu (adam-update.ts) in three elementwise dispatches, m', v', then p' from them,
 * instead of thirteen plus scalar uploads per parameter. Dispatches, not arithmetic, bound a step
 * on a fast GPU: tfjs pays a bind group and a uniform buffer for each, and Adam was about half of
 * the ~2,800 a SLFER step issued.
 */
type Which = 'm' | 'v' | 'p';

class AdamProgram extends FlatProgram {
  constructor(
    private readonly which: Which,
    shape: number[],
    util: WebgpuUtil,
  ) {
    const inputs = which === 'm' ? ['m', 'g'] : which === 'v' ? ['v', 'g'] : ['p', 'm', 'v'];
    super(inputs, shape, `slferAdam_${which}`, 'beta1 : f32, beta2 : f32, rest1 : f32, rest2 : f32, epsilon : f32, c2 : f32, stepSize : f32,', util, 256);
  }

  getUserCode(): string {
    // The same operations, in the same order, as Adam's op-based path (train/adam.ts); 1 − β comes
    // from the host in double, as there (in f32, 1 − 0.999 is off by 1.3e-5).
    const value = {
      m: 'm[index] * uniforms.beta1 + g[index] * uniforms.rest1',
      v: 'v[index] * uniforms.beta2 + (g[index] * g[index]) * uniforms.rest2',
      p: 'p[index] - (m[index] / (sqrt(v[index] / uniforms.c2) + uniforms.epsilon)) * uniforms.stepSize',
    }[this.which];
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          setOutputAtIndex(index, ${value});
        }
      }
    `;
  }
}

export function webgpuAdamKernel(util: WebgpuUtil): KernelConfig {
  return {
    kernelName: ADAM_UPDATE,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { p, m, v, g } = inputs as Record<'p' | 'm' | 'v' | 'g', TensorInfo>;
      const a = attrs as unknown as AdamUpdateAttrs;
      const gpu = backend as unknown as WebgpuBackend;
      const uniforms: WebgpuUniform[] = [a.beta1, a.beta2, 1 - a.beta1, 1 - a.beta2, a.epsilon, a.c2, a.stepSize].map((x) => ({ type: 'float32', data: [x] }));
      const m2 = gpu.runWebGPUProgram(new AdamProgram('m', p.shape, util), [m, g], 'float32', uniforms);
      const v2 = gpu.runWebGPUProgram(new AdamProgram('v', p.shape, util), [v, g], 'float32', uniforms);
      const p2 = gpu.runWebGPUProgram(new AdamProgram('p', p.shape, util), [p, m2, v2], 'float32', uniforms);
      return [p2, m2, v2];
    },
  };
}
