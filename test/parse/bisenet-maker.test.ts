import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseEngine } from '../../src/engine/backend.js';
import { createBiSeNetMaker, nearestResize } from '../../src/parse/bisenet-maker.js';
import { sha256File } from '../../src/util/sha256-file.js';
import type { MaskMaker } from '../../src/parse/mask-maker.js';
import { BISENET_ZIP } from './bisenet-fixture.js';

// The full-size BiSeNet with the fixture's weights, at a small input size to keep the test quick
// (the default, 512, runs through the CLI test).
let maker: MaskMaker & { engine: { backend: string } };
beforeAll(async () => {
  maker = await createBiSeNetMaker({ weights: BISENET_ZIP, inputSize: 64, backend: 'wasm' });
});
afterAll(async () => {
  maker.dispose();
  await releaseEngine();
});

const gradient = (w: number, h: number) => Uint8Array.from({ length: w * h * 3 }, (_, i) => ((i % 3) * 80 + Math.floor(i / 3 / w) * 3 + (Math.floor(i / 3) % w) * 2) & 255);

describe('BiSeNet mask maker', () => {
  it('gives one class id 0..18 per pixel at the image\'s own size, for any shape', async () => {
    for (const [w, h] of [[100, 100], [143, 181], [37, 23], [1, 1], [700, 90]]) {
      const ids = await maker.label(gradient(w, h), w, h);
      expect(ids).not.toBeNull();
      expect(ids!.length).toBe(w * h);
      expect(Math.max(...ids!)).toBeLessThan(19);
    }
  });

  it('is deterministic: the same image gives the same mask', async () => {
    const a = await maker.label(gradient(100, 100), 100, 100);
    const b = await maker.label(gradient(100, 100), 100, 100);
    expect(Buffer.from(a!).equals(Buffer.from(b!))).toBe(true);
  });

  it('brings the argmax to the image size by nearest neighbour, each pixel taking the class under its centre', () => {
    const ids = Int32Array.from({ length: 16 }, (_, i) => i); // a 4x4 map with a distinct id per pixel
    expect([...nearestResize(ids, 4, 8, 8).subarray(0, 8)]).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    expect([...nearestResize(ids, 4, 8, 8).subarray(8, 16)]).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    expect([...nearestResize(ids, 4, 8, 8).subarray(16, 24)]).toEqual([4, 4, 5, 5, 6, 6, 7, 7]);
    expect([...nearestResize(ids, 4, 2, 2)]).toEqual([5, 7, 13, 15]);
    expect([...nearestResize(ids, 4, 3, 1)]).toEqual([8, 10, 11]);
  });

  it('leaks no tensors: tf.memory() is flat across images', async () => {
    await maker.label(gradient(50, 60), 50, 60);
    const before = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    for (let i = 0; i < 3; i++) await maker.label(gradient(80 + i, 90), 80 + i, 90);
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.memory().numBytes).toBe(bytes);
  });

  it('describes itself for parse.json: weights and their SHA-256, input size, engine', async () => {
    const d = maker.description;
    expect(maker.method).toBe('bisenet');
    expect(d.weights).toBe(BISENET_ZIP);
    expect(d.weightsSha256).toBe(await sha256File(BISENET_ZIP));
    expect(d.weightsSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(d.inputSize).toBe(64);
    expect(d.engine).toBe('wasm');
    expect(d.maskResize).toMatch(/nearest/);
  });
});
