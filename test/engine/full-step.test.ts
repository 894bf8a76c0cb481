import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadNativeKernels } from '../../src/engine/native/addon.js';
import { expectStepMatchesCpu } from '../helpers/full-step.js';

// wasm as it runs by default: convolutions on oneDNN where the native kernels are built.
// full-step-xnnpack.test.ts checks the pure-wasm path.
describe('a full SLFER training step', () => {
  it(`gives the same loss and gradients on wasm (${loadNativeKernels().ok ? 'oneDNN' : 'XNNPACK'} convolutions, slfer-dist kernels) as on the cpu reference`, async () => {
    await expectStepMatchesCpu('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });
});
