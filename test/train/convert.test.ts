import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NUM_EXPRESSIONS, NUM_PARTS } from '../../src/data/labels.js';
import { VARIANTS, type Variant } from '../../src/model/config.js';
import { SlferModel } from '../../src/model/slfer.js';
import { readStateDict, toFloat32, type StateDict } from '../../src/torch/state-dict.js';
import { writeStateDict } from '../../src/torch/write-torch-file.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { convertFromTorch, convertToTorch } from '../../src/train/convert.js';
import { loadTrainedModel } from '../../src/train/load-model.js';
import { runCli } from '../helpers/cli.js';
import { syntheticDataset } from '../helpers/synthetic.js';
import { rejected } from '../helpers/thrown.js';

const FIX = join(import.meta.dirname, '../fixtures/torch');
const PROPOSED = join(FIX, 'slfer-proposed.zip.pth');
// The reference model's keys and shapes per variant, as PyTorch lists them (scripts/peers/torch_fixtures.py).
const REFERENCE = JSON.parse(readFileSync(join(FIX, 'slfer-keys.json'), 'utf8')) as Record<Variant, Record<string, number[]>>;
const tmp = mkdtempSync(join(tmpdir(), 'slfer-convert-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});


const shapes = (sd: StateDict) => Object.fromEntries([...sd].map(([k, t]) => [k, t.shape]));

/** A fresh width-1 model of a variant saved as a checkpoint (what training would leave). */
async function checkpointOf(variant: Variant, width = 1): Promise<string> {
  const model = new SlferModel({ variant, width, inputSize: 64, seReduction: 16, numExpressions: NUM_EXPRESSIONS, numParts: NUM_PARTS }, 5);
  const { params, buffers } = await model.store.read();
  const zeros = params.map((p) => new Float32Array(p.length));
  const dir = join(tmp, `ckpt-${variant}-${width}`, 'checkpoints');
  saveCheckpoint(
    dir,
    { epoch: 1, step: 7, rng: { seed: 5, nextEpoch: 1 }, model: model.config, params, buffers, adam: { t: 7, m: zeros, v: zeros }, config: { model: { variant, width, inputSize: 64 } } },
    { params: model.store.paramSpecs, buffers: model.store.bufferSpecs },
  );
  model.dispose();
  return dir;
}

describe('convert: a PyTorch state dict becomes a run folder', () => {
  it.each(['zip', 'legacy'])('reads the %s file into a checkpoint that loads, with the variant and width the file implies', async (format) => {
    const r = await convertFromTorch(join(FIX, `slfer-proposed.${format}.pth`), { out: join(tmp, `from-${format}`), config: { model: { inputSize: 96 } } });
    expect(r.variant).toBe('proposed');
    expect(r.tensors).toBe(164);
    const { model, config, epoch } = loadTrainedModel(r.runDir);
    expect(config.model).toMatchObject({ variant: 'proposed', width: 1, inputSize: 96 });
    expect(epoch).toBe(0);
    // One value checked by index: torch's [out, in, kh, kw] landed at our [kh, kw, in, out].
    const sd = await readStateDict(PROPOSED);
    const torchW = toFloat32(sd.get('layer3.1.conv2.weight')!);
    const ours = (await model.store.get('layer3.1.conv2.weight').data()) as Float32Array;
    expect(ours[((2 * 3 + 1) * 256 + 100) * 256 + 7]).toBe(torchW[((7 * 256 + 100) * 3 + 2) * 3 + 1]);
    model.dispose();
  });

  it('goes back with --to-torch to exactly the tensors it came from, under the reference keys', async () => {
    const { runDir } = await convertFromTorch(PROPOSED, { out: join(tmp, 'round-trip'), config: { model: { inputSize: 64 } } });
    const file = join(tmp, 'round-trip.pth');
    expect(convertToTorch(runDir, file).tensors).toBe(188);
    const back = await readStateDict(file);
    const orig = await readStateDict(PROPOSED);
    expect(shapes(back)).toEqual(REFERENCE.proposed);
    for (const [k, t] of orig) {
      if (k.endsWith('num_batches_tracked')) continue;
      expect(Array.from(toFloat32(back.get(k)!)), k).toEqual(Array.from(toFloat32(t)));
    }
  });

  it.each([...VARIANTS])('writes the %s variant with exactly the keys and shapes the reference model has (strict loading)', async (variant) => {
    const file = join(tmp, `${variant}.pth`);
    convertToTorch(await checkpointOf(variant), file);
    const sd = await readStateDict(file);
    expect(shapes(sd)).toEqual(REFERENCE[variant]);
    expect(sd.get('stem.1.num_batches_tracked')!.data).toEqual(BigInt64Array.of(7n));
    expect((await convertFromTorch(file, { out: join(tmp, `back-${variant}`) })).variant).toBe(variant);
  });
});

describe('convert refuses what does not fit, and leaves nothing half-written', () => {
  it('a torchvision ResNet18 (pointing to --pretrained)', async () => {
    const e = await rejected(convertFromTorch(join(FIX, 'resnet18-msceleb.zip.pth'), { out: join(tmp, 'no-1') }));
    expect(e.code).toBe('SLFER_WEIGHTS_MISMATCH');
    expect(e.message).toContain('not a SLFER state dict');
    expect(e.hint).toContain('--pretrained');
    expect(existsSync(join(tmp, 'no-1'))).toBe(false);
  });

  it('a missing or an unexpected tensor, naming it', async () => {
    const sd = await readStateDict(PROPOSED);
    sd.delete('decode.6.weight');
    sd.set('extra.weight', { dtype: 'float32', shape: [1], data: Float32Array.of(1) });
    const bad = join(tmp, 'incomplete.pth');
    writeStateDict(bad, sd);
    const e = await rejected(convertFromTorch(bad, { out: join(tmp, 'no-2') }));
    expect(e.message).toContain('missing decode.6.weight');
    expect(e.message).toContain('unexpected extra.weight');
    expect(existsSync(join(tmp, 'no-2'))).toBe(false);
    expect(readdirSync(tmp).some((n) => n.startsWith('no-2.tmp'))).toBe(false);
  });

  it('a shape the variant does not have, naming the key and both shapes', async () => {
    const sd = await readStateDict(PROPOSED);
    sd.set('ect.4.weight', { dtype: 'float32', shape: [6, 128], data: new Float32Array(6 * 128) });
    const bad = join(tmp, 'six-expressions.pth');
    writeStateDict(bad, sd);
    const e = await rejected(convertFromTorch(bad, { out: join(tmp, 'no-3') }));
    expect(e.message).toContain('ect.4.weight has shape [6,128]');
    expect(e.message).toContain('needs [7,128]');
  });

  it('an --out folder that already holds something', async () => {
    const out = join(tmp, 'occupied');
    mkdirSync(out);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    const e = await rejected(convertFromTorch(PROPOSED, { out }));
    expect(e.code).toBe('SLFER_INVALID_ARGUMENT');
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('--to-torch of a width the reference model cannot build', async () => {
    const e = await rejected(() => convertToTorch(join(tmp, 'x'), join(tmp, 'never.pth')));
    expect(e.code).toBe('SLFER_CHECKPOINT_NOT_FOUND');
    const narrow = await checkpointOf('baseline', 0.5);
    const w = await rejected(() => convertToTorch(narrow, join(tmp, 'narrow.pth')));
    expect(w.code).toBe('SLFER_WEIGHTS_MISMATCH');
    expect(w.message).toContain('width 0.5');
    expect(existsSync(join(tmp, 'narrow.pth'))).toBe(false);
  });
});

describe('a converted run from the CLI: predict, eval and train --resume accept it', () => {
  const cli = (args: string[]) => runCli(args);
  let data: Awaited<ReturnType<typeof syntheticDataset>>;
  let run: string;
  beforeAll(async () => {
    data = await syntheticDataset({ train: 8, test: 4, size: 64 });
    run = join(tmp, 'cli-run');
    const config = join(data.base, 'c.json');
    writeFileSync(config, JSON.stringify({ data: { dataset: 'rafdb', root: data.root, resize: 64, threads: 1 }, train: { batchSize: 4, milestones: [1] }, engine: { backend: 'wasm' } }));
    const r = cli(['convert', PROPOSED, '--out', run, '-c', config, '--input-size', '64']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('SLFER proposed, 164 tensors');
  });
  afterAll(() => data.cleanup());

  it('predicts and evaluates with the converted weights', () => {
    const image = join(data.root, 'Image', 'aligned', readdirSync(join(data.root, 'Image', 'aligned'))[0]);
    const p = cli(['predict', '--checkpoint', run, '--json', image]);
    expect(p.status, p.stderr).toBe(0);
    expect((JSON.parse(p.stdout) as { expression: string }[])[0].expression).toMatch(/^[A-Z][a-z]+$/);
    const e = cli(['eval', '--checkpoint', run]);
    expect(e.status, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/test accuracy [\d.]+% .* on 4 rafdb test images/);
  });

  it('fine-tunes from it with train --resume', () => {
    const r = cli(['train', '--resume', run, '--epochs', '1']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('resumed from');
    expect(existsSync(join(run, 'checkpoints', 'epoch-0001', 'manifest.json'))).toBe(true);
  });

  it('--to-torch from the CLI says how to load the file', () => {
    const r = cli(['convert', '--to-torch', run, '--out', join(tmp, 'cli.pth')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("SLFER(variant='proposed').load_state_dict(torch.load(path), strict=True)");
  });
});
