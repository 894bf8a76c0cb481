import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NUM_EXPRESSIONS, NUM_PARTS } from '../../src/data/labels.js';
import type { Variant } from '../../src/model/config.js';
import { SlferModel } from '../../src/model/slfer.js';
import { readStateDict, toFloat32 } from '../../src/torch/state-dict.js';
import { writeStateDict } from '../../src/torch/write-torch-file.js';
import { formatPretrained, loadPretrained } from '../../src/train/pretrained.js';
import { runCli } from '../helpers/cli.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';
import { rejected } from '../helpers/thrown.js';

// The backbones are full-size ResNet18 state dicts written by PyTorch (strided views over small
// storages, so every element of a tensor is distinct along every axis; scripts/peers/torch_fixtures.py).
const FIX = join(import.meta.dirname, '../fixtures/torch');
const MSCELEB = join(FIX, 'resnet18-msceleb.zip.pth');
const DREAM = join(FIX, 'ijba-res18-naive.legacy.pth.tar');
const tmp = mkdtempSync(join(tmpdir(), 'slfer-pretrained-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const modelOf = (variant: Variant = 'proposed', width = 1) =>
  new SlferModel({ variant, width, inputSize: 64, seReduction: 16, numExpressions: NUM_EXPRESSIONS, numParts: NUM_PARTS }, 3);


beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('--pretrained: a torchvision ResNet18 starts the backbone', () => {
  it('copies all 100 backbone tensors, transposed to our layout, and lists the classifier as unused', async () => {
    const model = modelOf();
    const r = await loadPretrained(model, MSCELEB);
    expect(r.loaded).toBe(100);
    expect(r.missing).toEqual([]);
    expect(r.unused).toEqual(['fc.weight', 'fc.bias']);
    expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
    const sd = await readStateDict(MSCELEB);
    // conv: torch [out, in, kh, kw] → ours [kh, kw, in, out], element by element.
    const conv = toFloat32(sd.get('layer2.0.conv1.weight')!);
    const ours = (await model.store.get('layer2.0.conv1.weight').data()) as Float32Array;
    const [o, i, k] = [128, 64, 3];
    for (const [oo, ii, h, w] of [[0, 0, 0, 0], [5, 17, 1, 2], [127, 63, 2, 1], [64, 3, 2, 2]]) {
      expect(ours[((h * k + w) * i + ii) * o + oo]).toBe(conv[((oo * i + ii) * k + h) * k + w]);
    }
    const names: [string, string][] = [
      ['stem.bn.gamma', 'bn1.weight'],
      ['stem.bn.beta', 'bn1.bias'],
      ['layer3.0.down.bn.movingMean', 'layer3.0.downsample.1.running_mean'],
      ['layer4.1.bn2.movingVar', 'layer4.1.bn2.running_var'],
    ];
    for (const [mine, theirs] of names) expect(Array.from((await model.store.get(mine).data()) as Float32Array), mine).toEqual(Array.from(toFloat32(sd.get(theirs)!)));
    model.dispose();
  });

  it('leaves the SE blocks and the three heads at their initialisation', async () => {
    const fresh = modelOf();
    const loaded = modelOf();
    await loadPretrained(loaded, MSCELEB);
    for (const name of ['layer1.0.se.fc1.weight', 'ect.fc1.weight', 'ct.fc2.bias', 'st.fuse.conv.weight', 'st.classifier.bias']) {
      expect(Array.from((await loaded.store.get(name).data()) as Float32Array), name).toEqual(Array.from((await fresh.store.get(name).data()) as Float32Array));
    }
    expect(Array.from((await loaded.store.get('stem.conv.weight').data()) as Float32Array)).not.toEqual(Array.from((await fresh.store.get('stem.conv.weight').data()) as Float32Array));
    fresh.dispose();
    loaded.dispose();
  });

  it("reads DREAM's legacy ijba_res18_naive.pth.tar and says it expects [0, 1] inputs", async () => {
    const model = modelOf('baseline');
    const r = await loadPretrained(model, DREAM);
    expect(r.loaded).toBe(100);
    expect(r.unused.sort()).toEqual(['fc.bias', 'fc.weight', 'feature.bias', 'feature.weight']);
    expect(r.note).toMatch(/\[0, 1\] inputs.*data\.mean \[0, 0, 0\]/);
    const lines = formatPretrained(r).join('\n');
    expect(lines).toContain('pretrained: 100 tensors from');
    expect(lines).toContain('unused: ');
    model.dispose();
  });

  it('lists the backbone tensors a file lacks, which keep their initialisation', async () => {
    const sd = await readStateDict(MSCELEB);
    sd.delete('layer4.1.conv2.weight');
    sd.delete('bn1.running_var');
    const partial = join(tmp, 'partial.pth');
    writeStateDict(partial, sd);
    const model = modelOf('baseline');
    const r = await loadPretrained(model, partial);
    expect(r.loaded).toBe(98);
    expect(r.missing.sort()).toEqual(['bn1.running_var', 'layer4.1.conv2.weight']);
    expect(Array.from((await model.store.get('stem.bn.movingVar').data()) as Float32Array).every((v) => v === 1)).toBe(true);
    model.dispose();
  });

  it('refuses a shape mismatch naming the key and both shapes, and leaves the model untouched', async () => {
    const sd = await readStateDict(MSCELEB);
    sd.set('layer2.1.conv1.weight', { dtype: 'float32', shape: [128, 64, 3, 3], data: new Float32Array(128 * 64 * 9) });
    const bad = join(tmp, 'bad-shape.pth');
    writeStateDict(bad, sd);
    const model = modelOf('baseline');
    const before = (await model.store.get('stem.conv.weight').data()) as Float32Array;
    const e = await rejected(loadPretrained(model, bad));
    expect(e.code).toBe('SLFER_WEIGHTS_MISMATCH');
    expect(e.message).toContain('layer2.1.conv1.weight has shape [128,64,3,3]');
    expect(e.message).toContain('needs [128,128,3,3]');
    expect(Array.from((await model.store.get('stem.conv.weight').data()) as Float32Array)).toEqual(Array.from(before));
    model.dispose();
  });

  it('refuses width other than 1, and a file that is not a ResNet18 (a whole SLFER model points to convert)', async () => {
    const narrow = modelOf('baseline', 0.5);
    const w = await rejected(loadPretrained(narrow, MSCELEB));
    expect(w.code).toBe('SLFER_WEIGHTS_MISMATCH');
    expect(w.message).toContain('width 0.5');
    narrow.dispose();
    const model = modelOf('baseline');
    const s = await rejected(loadPretrained(model, join(FIX, 'slfer-proposed.zip.pth')));
    expect(s.code).toBe('SLFER_WEIGHTS_MISMATCH');
    expect(s.hint).toContain('slfer-dist convert');
    model.dispose();
  });
});

describe('--pretrained from the CLI', () => {
  const cli = (args: string[]) => runCli(args);
  let data: Awaited<ReturnType<typeof syntheticDataset>>;
  let config: string;
  beforeAll(async () => {
    data = await syntheticDataset({ train: 8, test: 4, size: 64 });
    config = join(data.base, 'tiny.json');
    const c = tinyConfig(data.root, 64, { epochs: 1, batchSize: 4, variant: 'baseline' });
    writeFileSync(config, JSON.stringify({ ...c, model: { ...c.model, width: 1, inputSize: 64 } }));
  });
  afterAll(() => data.cleanup());

  it('train logs what it loaded and records the absolute path in the run config', () => {
    const out = join(tmp, 'run-train');
    const r = cli(['train', '-c', config, '--pretrained', MSCELEB, '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`pretrained: 100 tensors from ${MSCELEB}`);
    expect(r.stderr).toContain('in the file, unused: fc.weight, fc.bias');
    expect((JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { model: { pretrained: string } }).model.pretrained).toBe(MSCELEB);
  });

  it('launch: rank 0 reads the file and every rank starts from its weights', () => {
    const out = join(tmp, 'run-launch');
    const r = cli(['launch', '--workers', '2', '-c', config, '--pretrained', MSCELEB, '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    // One rank read it (the coordinator relays rank 0's log), and the checksum gate saw equal weights.
    expect(r.stderr.match(/pretrained: 100 tensors from/g)).toHaveLength(1);
    expect(r.stderr).toMatch(/checksum [0-9a-f]+ equal on all 2 ranks/);
  });

  it('a bad file stops the run before training, naming it', () => {
    const r = cli(['train', '-c', config, '--pretrained', join(FIX, 'unsafe.pth'), '--out', join(tmp, 'run-bad')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('SLFER_TORCH_FILE_UNSAFE');
  });
});
