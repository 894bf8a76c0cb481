import * as tf from '@tensorflow/tfjs';

/**
 * One Adam step for one parameter as a single kernel, so an engine can run it in a few passes
 * instead of thirteen elementwise ops and their scalar uploads, per parameter, per step:
 *   inputs p, m, v, g; attrs beta1, beta2, epsilon, c2 = 1 − β₂ᵗ, stepSize = lr / (1 − β₁ᵗ)
 *   m' = β₁m + (1 − β₁)g,  v' = β₂v + (1 − β₂)g²,  p' = p − stepSize · m' / (√(v'/c2) + ε)
 * → [p', m', v']. train/adam.ts uses it where the current backend has it registered.
 */
export const ADAM_UPDATE = 'SlferAdamUpdate';

export interface AdamUpdateAttrs {
  beta1: number;
  beta2: number;
  epsilon: number;
  c2: number;
  stepSize: number;
}

/** Whether the current backend runs Adam with the kernel above. */
export function hasAdamKernel(): boolean {
  return tf.getKernel(ADAM_UPDATE, tf.getBackend()) !== undefined;
}
