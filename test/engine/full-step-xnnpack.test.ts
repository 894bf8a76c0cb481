import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadNativeKernels } from '../../src/engine/native/addon.js';
import { expectStepMatchesCpu } from '../helpers/full-step.js';

// The pure-wasm engine (what runs where the native kernels are not built): XNNPACK forward
// convolutions, gradients rewritten as forward convolutions, host kernels.
process.env.SLFER_NATIVE = 'off';

describe('a full SLFER training step without native kernels', () => {
  it('gives the same loss and gradients on pure wasm (XNNPACK) as on the cpu reference', async () => {
    await expectStepMatchesCpu('wasm');
    expect(loadNativeKernels().ok).toBe(false);
    expect(tf.getBackend()).toBe('wasm');
  });
});
