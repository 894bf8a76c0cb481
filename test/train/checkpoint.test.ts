import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../src/engine/backend.js';
import type { ModelConfig } from '../../src/model/config.js';
import { SlferModel } from '../../src/model/slfer.js';
import { Adam } from '../../src/train/adam.js';
import { assertSameLayout, listCheckpoints, loadCheckpoint, resolveCheckpoint, saveCheckpoint, type RankEpochProgress, type TrainingState } from '../../src/train/checkpoint.js';
import { SlferError } from '../../src/errors.js';
import { thrown } from '../helpers/thrown.js';

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

const same = (a: Float32Array[], b: Float32Array[]) =>
  a.length === b.length && a.every((x, i) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(b[i].buffer, b[i].byteOffset, b[i].byteLength)));
const json = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

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

describe('mid-epoch checkpoints', () => {
  const shifted = (xs: Float32Array[], by: number) => xs.map((x) => x.map((v) => v + by));
  const progressOf = (rank: number, buffers: Float32Array[]): RankEpochProgress => ({
    rank,
    buffers,
    images: 12 + rank,
    // A diverged step's NaN must come back as NaN (JSON writes it as null).
    lossSums: { total: 1.5 + rank / 3, expression: 0.1, segmentation: NaN, components: 0 },
    skipped: rank === 1 ? [{ path: '/d/x.jpg', reason: 'truncated' }] : [],
    seconds: 2,
    computeMs: 3,
    reduceMs: 4,
    waitMs: 5,
  });
  async function midState(model: SlferModel, adam: Adam, worldSize: number, stepInEpoch = 40) {
    const base = await stateOf(model, adam, 2);
    const ranks = Array.from({ length: worldSize }, (_, r) => progressOf(r, r === 0 ? base.buffers : shifted(base.buffers, r)));
    return { ...base, testAccuracy: undefined, worldSize, stepInEpoch, ranks };
  }
  const specsOf = (model: SlferModel) => ({ params: model.store.paramSpecs, buffers: model.store.bufferSpecs });

  it('round-trip every rank\'s BN statistics and epoch sums, as v2 named after the epochs and steps done', async () => {
    const { model, adam } = trainedPair();
    const state = await midState(model, adam, 3);
    const root = join(dir, 'mid');
    const path = saveCheckpoint(root, state, specsOf(model));
    expect(basename(path)).toBe('epoch-0002-step-000040');
    expect(json(join(path, 'manifest.json')).version).toBe(2);
    expect(json(join(root, 'latest.json'))).toEqual({ epoch: 2, stepInEpoch: 40, path: 'epoch-0002-step-000040' });
    const back = loadCheckpoint(root);
    expect([back.epoch, back.stepInEpoch, back.worldSize, back.step]).toEqual([2, 40, 3, 20]);
    expect(back.ranks).toHaveLength(3);
    back.ranks!.forEach((r, i) => expect(same(r.buffers, state.ranks[i].buffers), `rank ${i}`).toBe(true));
    expect(same(back.ranks![1].buffers, back.ranks![0].buffers)).toBe(false);
    expect(same(back.buffers, state.buffers)).toBe(true);
    const withoutBuffers = (rs: RankEpochProgress[]) => rs.map(({ buffers: _, ...r }) => r);
    expect(withoutBuffers(back.ranks!)).toEqual(withoutBuffers(state.ranks));
    expect(back.ranks![2].lossSums.segmentation).toBeNaN();
    expect(same(back.params, state.params) && same(back.adam.m, state.adam.m) && same(back.adam.v, state.adam.v)).toBe(true);
    model.dispose();
    adam.dispose();
  });

  it('leave end-of-epoch checkpoints as they were: an old one loads, and rewriting it gives the same files', () => {
    // Written by the code before mid-epoch checkpoints existed (commit 455ab5e).
    const fixture = join(import.meta.dirname, '..', 'fixtures', 'checkpoint-v1');
    const old = loadCheckpoint(fixture);
    expect(old).toMatchObject({ epoch: 2, step: 14, worldSize: 1, testAccuracy: 0.375, rng: { seed: 11, nextEpoch: 2 }, adam: { t: 14 } });
    expect(old.stepInEpoch).toBeUndefined();
    expect(old.ranks).toBeUndefined();
    expect(Array.from(old.params[0])).toEqual([0.5, -1.25, 3, Math.fround(1e-7), -0, 2.5]);
    expect(Array.from(old.buffers[0])).toEqual([0.25, 0.5, 0.75]);
    const again = saveCheckpoint(join(dir, 'v1-again'), old, old.specs);
    const manifest = (d: string) => ({ ...json(join(d, 'manifest.json')), createdAt: '' });
    expect(manifest(again)).toEqual(manifest(join(fixture, 'epoch-0002')));
    expect(readFileSync(join(again, 'tensors.bin')).equals(readFileSync(join(fixture, 'epoch-0002', 'tensors.bin')))).toBe(true);
  });

  it('never evict an end-of-epoch or the best checkpoint, and go once a later epoch has ended', async () => {
    const { model, adam } = trainedPair();
    const root = join(dir, 'prune');
    const end = async (epoch: number, best = false) => saveCheckpoint(root, { ...(await stateOf(model, adam, epoch)), worldSize: 1 }, specsOf(model), { keepLast: 2, best });
    const mid = async (epoch: number, step: number) => {
      const s = await midState(model, adam, 1, step);
      saveCheckpoint(root, { ...s, epoch, rng: { seed: 3, nextEpoch: epoch } }, specsOf(model), { keepLast: 2 });
    };
    const names = () => readdirSync(root).filter((n) => n.startsWith('epoch-')).sort();
    await end(1, true);
    for (const step of [3, 6, 9]) await mid(1, step);
    expect(names()).toEqual(['epoch-0001', 'epoch-0001-step-000006', 'epoch-0001-step-000009']);
    // Training order, whatever the digits.
    expect(listCheckpoints(root).map((c) => [c.epoch, c.stepInEpoch])).toEqual([
      [1, undefined],
      [1, 6],
      [1, 9],
    ]);
    expect(resolveCheckpoint(root)).toBe(join(root, 'epoch-0001-step-000009'));
    expect(resolveCheckpoint(root, 'best')).toBe(join(root, 'epoch-0001'));
    await end(2);
    expect(names()).toEqual(['epoch-0001', 'epoch-0002']);
    await mid(2, 3);
    await end(3);
    await end(4);
    expect(names()).toEqual(['epoch-0001', 'epoch-0003', 'epoch-0004']);
    model.dispose();
    adam.dispose();
  });

  it('refuse a mid-epoch state built wrong before writing anything, and a manifest newer than this code', async () => {
    const { model, adam } = trainedPair();
    const root = join(dir, 'wrong');
    const state = await midState(model, adam, 3);
    const cases: [TrainingState, { best?: boolean }, string][] = [
      [state, { best: true }, 'only end-of-epoch checkpoints can be the best'],
      [{ ...state, ranks: state.ranks.slice(0, 2) }, {}, '2 ranks\' progress for world size 3'],
      [{ ...state, ranks: [state.ranks[1], state.ranks[0], state.ranks[2]] }, {}, 'not in rank order'],
      [{ ...state, stepInEpoch: 0 }, {}, 'stepInEpoch 0'],
    ];
    for (const [bad, opts, why] of cases) {
      const e = thrown(() => saveCheckpoint(root, bad, specsOf(model), opts));
      expect(e.code).toBe('SLFER_INTERNAL');
      expect(e.message).toContain(why);
    }
    expect(existsSync(root)).toBe(false);
    const path = saveCheckpoint(root, state, specsOf(model));
    writeFileSync(join(path, 'manifest.json'), JSON.stringify({ ...json(join(path, 'manifest.json')), version: 3 }));
    const e = thrown(() => loadCheckpoint(path));
    expect(e.code).toBe('SLFER_CHECKPOINT_CORRUPT');
    expect(e.message).toContain('version 3, newer than this slfer-dist reads');
    model.dispose();
    adam.dispose();
  });
});
