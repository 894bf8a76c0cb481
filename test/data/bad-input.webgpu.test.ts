import * as tf from '@tensorflow/tfjs';
import { afterAll, expect, it } from 'vitest';
import { releaseEngine, selectBackend } from '../../src/engine/backend.js';
import { describeBadInputs } from '../helpers/bad-input-table.js';

// Every bad input of test/helpers/bad-input.ts, trained on the webgpu engine with slfer-dist's WGSL
// kernels: lavapipe on a CPU machine. Gated like the other webgpu tests (SLFER_WEBGPU_TESTS=1 asks;
// SLFER_REQUIRE_WEBGPU=1, as CI sets, requires).
const wanted = process.env.SLFER_WEBGPU_TESTS === '1' || process.env.SLFER_REQUIRE_WEBGPU === '1';
let reason = 'not requested (SLFER_WEBGPU_TESTS=1 runs these tests)';
if (wanted) {
  try {
    await selectBackend('webgpu');
    reason = '';
  } catch (e) {
    reason = (e as Error).message;
  }
}

it('the webgpu engine comes up wherever it is required', () => {
  if (process.env.SLFER_REQUIRE_WEBGPU === '1') expect(reason || 'available').toBe('available');
});

afterAll(async () => {
  await tf.setBackend('cpu');
  await releaseEngine();
});

describeBadInputs('webgpu', reason);
