import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { selectBackend } from '../../src/engine/backend.js';
import { SlferError } from '../../src/errors.js';

describe('engine selection', () => {
  it('auto picks the fastest backend that can train here and says why it passed over the others', async () => {
    const e = await selectBackend('auto');
    // No libtensorflow and no hardware GPU on CI machines: wasm with slfer-dist's training kernels.
    expect(e.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm')).toBeDefined();
    expect(e.passedOver.map((p) => p.backend)).toEqual(['tensorflow', 'webgpu']);
    for (const p of e.passedOver) expect(p.reason).not.toMatch(/\n/);
  });

  it('fails an explicit --backend tensorflow with the reason and what to install', async () => {
    const err = await selectBackend('tensorflow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlferError);
    expect((err as SlferError).code).toBe('SLFER_ENGINE_UNAVAILABLE');
    expect((err as SlferError).message).toContain('@tensorflow/tfjs-node-gpu');
    expect((err as SlferError).hint).toContain('CUDA 11.2');
  });

  it('activates the cpu reference backend on request', async () => {
    const e = await selectBackend('cpu');
    expect(e.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });
});
