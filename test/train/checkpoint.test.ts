import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../src/engine/backend.js';
import type { ModelConfig } from '../../src/model/config.js';
import { SlferModel } from '../../src/model/slfer.js';
import { Adam } from '../../src/train/adam.js';
import { assertSameLayout, loadCheckpoint, resolveCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.js';
import { SlferError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'slfer-ckpt-'));
const cfg: ModelConfig = { variant: 'proposed', width: 0.125, inputSize: 32, seReduction: 16, numExpressions: 7, numParts: 8 };

beforeAll(async () => {
  await selectBackend('cpu');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function stateOf(model: SlferModel, adam: Adam, epoch: number) {
  const { params, buffers } = await model.store.read();
  return { epoch, step: epoch * 10, rng: { seed: 3, nextEpoch: epoch }, model: cfg, params, buffers, adam: await adam.read(), testAccuracy: 0.5 + epoch / 100, config: { hello: 'world' } };
}

function trainedPair() {
  const model = new SlferModel(cfg, 3);
  const adam = new Adam(model.store.params, { beta1: 0.5, beta2: 0.999, epsilon: 1e-8 });
  // One real update so moments and weights are not at their initial values.
  const grads = model.store.params.map((p) => tf.randomNormal(p.shape));
  adam.apply(grads, 1e-3);
  grads.forEach((g) => g.dispose());
  return { model, adam };
}

describe('checkpoints', () => {
  it('round-trip weights, BN statistics, optimizer moments and counters exactly', async () => {
    const { model, adam } = trainedPair();
    const specs = { params: model.store.paramSpecs, buffers: model.store.bufferSpecs };
    const state = await stateOf(model, adam, 1);
    const path = saveCheckpoint(join(dir, 'a'), state, specs);
    const back = loadCheckpoint(path);
    expect(back.epoch).toBe(1);
    expect(back.step).toBe(10);
    expect(back.rng).toEqual({ seed: 3, nextEpoch: 1 });
    expect(back.adam.t).toBe(1);
    expect(back.config).toEqual({ hello: 'world' });
    const same = (a: Float32Array[], b: Float32Array[]) => a.every((x, i) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(b[i].buffer, b[i].byteOffset, b[i].byteLength)));
    expect(same(back.params, state.params)).toBe(true);
    expect(same(back.buffers, state.buffers)).toBe(true);
    expect(same(back.adam.m, state.adam.m)).toBe(true);
    expect(same(back.adam.v, state.adam.v)).toBe(true);
    // Restoring into a fresh model reproduces the same tensors.
    const fresh = new SlferModel(cfg, 99);
    assertSameLayout(path, { params: fresh.store.paramSpecs, buffers: fresh.store.bufferSpecs }, back.specs);
    fresh.store.write(back.params, back.buffers);
    const again = await fresh.store.read();
    expect(same(again.params, state.params)).toBe(true);
    [model, fresh].forEach((m) => m.dispose());
    adam.dispose();
  });

  it('leaves no temporary folder and points latest/best at complete checkpoints', async () => {
    const { model, adam } = trainedPair();
    const specs = { params: model.store.paramSpecs, buffers: model.store.bufferSpecs };
    const root = join(dir, 'b');
    for (let e = 1; e <= 5; e++) saveCheckpoint(root, await stateOf(model, adam, e), specs, { keepLast: 2, best: e === 2 });
    expect(readdirSync(root).sort()).toEqual(['best.json', 'epoch-0002', 'epoch-0004', 'epoch-0005', 'latest.json']);
    expect(resolveCheckpoint(join(root, '..', 'b'))).toBe(join(root, 'epoch-0005'));
    expect(resolveCheckpoint(root, 'best')).toBe(join(root, 'epoch-0002'));
    model.dispose();
    adam.dispose();
  });

  it('refuses a damaged checkpoint, naming it', async () => {
    const { model, adam } = trainedPair();
    const path = saveCheckpoint(join(dir, 'c'), await stateOf(model, adam, 1), { params: model.store.paramSpecs, buffers: model.store.bufferSpecs });
    const bin = join(path, 'tensors.bin');
    const bytes = readFileSync(bin);
    bytes[100] ^= 0xff;
    writeFileSync(bin, bytes);
    expect(() => loadCheckpoint(path)).toThrowError(SlferError);
    try {
      loadCheckpoint(path);
    } catch (e) {
      expect((e as SlferError).code).toBe('SLFER_CHECKPOINT_CORRUPT');
      expect((e as SlferError).message).toContain(path);
    }
    model.dispose();
    adam.dispose();
  });

  it('refuses to load into a model of another shape', async () => {
    const { model, adam } = trainedPair();
    const path = saveCheckpoint(join(dir, 'd'), await stateOf(model, adam, 1), { params: model.store.paramSpecs, buffers: model.store.bufferSpecs });
    const other = new SlferModel({ ...cfg, variant: 'baseline' }, 1);
    expect(() => assertSameLayout(path, { params: other.store.paramSpecs, buffers: other.store.bufferSpecs }, loadCheckpoint(path).specs)).toThrowError(/does not fit this model/);
    [model, other].forEach((m) => m.dispose());
    adam.dispose();
  });

  it('says what to pass when there is no checkpoint', () => {
    expect(() => resolveCheckpoint(join(dir, 'nothing'))).toThrowError(/no checkpoint/);
  });
});
