import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { decode, encode } from 'fast-png';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PART_COLOURS, UNKNOWN_COLOUR } from '../../src/data/label-colours.js';
import { EXPRESSIONS, NUM_PARTS, PARSING_TO_PART, UNKNOWN_CLASS, UNKNOWN_PART } from '../../src/data/labels.js';
import { readRafDb } from '../../src/data/rafdb.js';
import type { Sample } from '../../src/data/types.js';
import { selectBackend } from '../../src/engine/backend.js';
import type { SlferError } from '../../src/errors.js';
import { variantParts, VARIANTS } from '../../src/model/config.js';
import { SlferModel } from '../../src/model/slfer.js';
import { Canvas } from '../../src/util/canvas.js';
import { formatPixelAccuracy, masksFigureLayout } from '../../src/train/eval-masks-figure.js';
import { requireSt } from '../../src/train/eval-masks.js';
import { evaluate } from '../../src/train/evaluate.js';
import { loadTrainedModel } from '../../src/train/load-model.js';
import { train } from '../../src/train/trainer.js';
import { runCli } from '../helpers/cli.js';
import { thrown } from '../helpers/thrown.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';

/** Image, mask and resize side; tinyConfig crops 32px out of it, from (4, 4). */
const SIDE = 40;
const S = 32;
const OFFSET = (SIDE - S) / 2;
/** Rows drawn by the library tests (the CLI test takes the default, 8). */
const COUNT = 4;
/** Test image 0 has an unknown band in its mask (rows 0..9: crop rows 0..5); test image 1 has no mask. */
const UNKNOWN_ROWS = 10;

let data: Awaited<ReturnType<typeof syntheticDataset>>;
let test: Sample[];
let run: string;
let baseline: string;

beforeAll(async () => {
  data = await syntheticDataset({ train: 24, test: 10, size: SIDE });
  test = readRafDb(data.root).test;
  const m = decode(readFileSync(test[0].maskPath!));
  const ids = Uint8Array.from(m.data as Uint8Array);
  ids.fill(UNKNOWN_CLASS, 0, UNKNOWN_ROWS * SIDE);
  writeFileSync(test[0].maskPath!, encode({ width: SIDE, height: SIDE, data: ids, channels: 1, depth: 8 }));
  rmSync(test[1].maskPath!);
  test = readRafDb(data.root).test;
  const proposed = tinyConfig(data.root, SIDE, { epochs: 1 });
  run = (await train({ config: { ...proposed, data: { ...proposed.data, skipMissingMasks: true } }, out: join(data.base, 'run') })).runDir;
  baseline = (await train({ config: tinyConfig(data.root, SIDE, { epochs: 1, variant: 'baseline' }), out: join(data.base, 'baseline') })).runDir;
}, 300_000);
afterAll(() => data.cleanup());

async function figure(name: string, count = COUNT) {
  const file = join(data.base, name);
  await evaluate({ checkpoint: run, backend: 'wasm', masks: { file, count } });
  const png = decode(readFileSync(file));
  const at = (x: number, y: number) => [...png.data.subarray((y * png.width + x) * 3, (y * png.width + x) * 3 + 3)];
  return { file, png, at };
}

/** The crop as the test pipeline makes it (resize with libvips, centre crop), computed here. */
async function cropOf(s: Sample): Promise<Uint8Array> {
  const full = await sharp(s.imagePath).removeAlpha().toColourspace('srgb').resize(SIDE, SIDE, { fit: 'fill' }).raw().toBuffer();
  const out = new Uint8Array(S * S * 3);
  for (let y = 0; y < S; y++) out.set(full.subarray(((y + OFFSET) * SIDE + OFFSET) * 3, ((y + OFFSET) * SIDE + OFFSET + S) * 3), y * S * 3);
  return out;
}

/** The 8-part crop of the mask on disk (mask, resize and image are all 40px, so no resampling), or null without one. */
function partsOf(s: Sample): Uint8Array | null {
  if (s.maskPath === null) return null;
  const ids = decode(readFileSync(s.maskPath)).data;
  const out = new Uint8Array(S * S);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const v = ids[(y + OFFSET) * SIDE + x + OFFSET];
      out[y * S + x] = v === UNKNOWN_CLASS ? UNKNOWN_PART : PARSING_TO_PART[v];
    }
  }
  return out;
}

/** ST's argmax and the expression argmax of the first COUNT test images, from model.forward here. */
async function forwardHere(): Promise<{ parts: Int32Array; expressions: Int32Array }> {
  await selectBackend('wasm');
  const { model, config } = loadTrainedModel(run);
  try {
    const { mean, std } = config.data;
    const x = new Float32Array(COUNT * S * S * 3);
    for (let b = 0; b < COUNT; b++) (await cropOf(test[b])).forEach((v, i) => (x[b * S * S * 3 + i] = (v / 255 - mean[i % 3]) / std[i % 3]));
    const [seg, expr] = tf.tidy(() => {
      const y = model.forward(tf.tensor4d(x, [COUNT, S, S, 3]), { training: false }, 'all');
      return [tf.argMax(y.segmentation!, 3), tf.argMax(y.expression, 1)];
    });
    const out = { parts: (await seg.data()) as Int32Array, expressions: (await expr.data()) as Int32Array };
    tf.dispose([seg, expr]);
    return out;
  } finally {
    model.dispose();
  }
}

describe('eval --masks', () => {
  it('writes a PNG of one row per test image: three input-size columns and a caption, a legend beside', async () => {
    const { png } = await figure('size.png');
    // Columns: 4px margin, 3 × (32 + 4), the caption (16 glyphs of 7px) + 4, the legend (12px
    // swatch + 4 + "background", 10 glyphs) + 4. Rows: a 16px header, then per image
    // max(32, 3 caption lines of 14px) + 4.
    expect([png.width, png.height, png.channels, png.depth]).toEqual([4 + 3 * 36 + 112 + 4 + (16 + 70) + 4, 16 + COUNT * (42 + 4), 3, 8]);
  });

  it('shows the centre crop the model saw, de-normalised back to its bytes', async () => {
    const { at } = await figure('image.png');
    const L = masksFigureLayout(COUNT, S);
    for (let k = 0; k < COUNT; k++) {
      const crop = await cropOf(test[k]);
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) expect(at(L.columns[0] + x, L.rowTop(k) + y)).toEqual([...crop.subarray((y * S + x) * 3, (y * S + x) * 3 + 3)]);
    }
  });

  it('colours the label column by the aggregate mask\'s parts, unknown in grey, and says "no mask" for an image without one', async () => {
    const { at } = await figure('label.png');
    const L = masksFigureLayout(COUNT, S);
    const cell = (k: number, x: number, y: number) => at(L.columns[1] + x, L.rowTop(k) + y);
    for (const k of [0, 2, 3]) {
      const parts = partsOf(test[k])!;
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) expect(cell(k, x, y)).toEqual([...(parts[y * S + x] === UNKNOWN_PART ? UNKNOWN_COLOUR : PART_COLOURS[parts[y * S + x]])]);
    }
    // The unknown band and real parts both show in image 0's label.
    expect(cell(0, 16, 0)).toEqual([...UNKNOWN_COLOUR]);
    expect(cell(0, 16, UNKNOWN_ROWS - OFFSET)).not.toEqual([...UNKNOWN_COLOUR]);
    expect(new Set(Array.from(partsOf(test[2])!)).size).toBeGreaterThan(2);

    // Image 1 has no mask: a plain cell with the words (black on light grey), no part colour.
    expect(test[1].maskPath).toBeNull();
    const seen = new Set<string>();
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) seen.add(cell(1, x, y).join(','));
    expect([...seen].sort()).toEqual(['0,0,0', '235,235,235']);
    const words = new Canvas(S, S);
    words.text(2, 2, 'no');
    words.text(2, 2 + L.lineHeight, 'mask');
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) expect(cell(1, x, y)[0] === 0).toBe(words.data[(y * S + x) * 3] === 0);
  });

  it('says "cannot read mask" in the label column for a mask it cannot read, and draws the row', async () => {
    const mask = test[3].maskPath!;
    const bytes = readFileSync(mask);
    writeFileSync(mask, 'not a png');
    try {
      const { at } = await figure('unreadable.png');
      const L = masksFigureLayout(COUNT, S);
      const colours = new Set<string>();
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) colours.add(at(L.columns[1] + x, L.rowTop(3) + y).join(','));
      expect([...colours].sort()).toEqual(['0,0,0', '235,235,235']);
      const words = new Canvas(S, S);
      ['cannot', 'read', 'mask'].forEach((w, j) => words.text(2, 2 + j * L.lineHeight, w, [0, 0, 0], S - 2));
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) expect(at(L.columns[1] + x, L.rowTop(3) + y)[0] === 0).toBe(words.data[(y * S + x) * 3] === 0);
    } finally {
      writeFileSync(mask, bytes);
    }
  });

  it('draws in the prediction column the argmax of model.forward\'s segmentation, and captions each row with the expressions and ST\'s pixel accuracy on known pixels', async () => {
    const { at, png } = await figure('prediction.png');
    const here = await forwardHere();
    const L = masksFigureLayout(COUNT, S);
    for (let k = 0; k < COUNT; k++) {
      const argmax = here.parts.subarray(k * S * S, (k + 1) * S * S);
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) expect(at(L.columns[2] + x, L.rowTop(k) + y)).toEqual([...PART_COLOURS[argmax[y * S + x]]]);

      const label = partsOf(test[k]);
      let known = 0;
      let correct = 0;
      label?.forEach((p, i) => {
        if (p < NUM_PARTS) known++;
        if (p < NUM_PARTS && p === argmax[i]) correct++;
      });
      if (k === 0) expect(known).toBe(S * S - (UNKNOWN_ROWS - OFFSET) * S);
      const accuracy = label === null ? null : correct / known;
      // The caption's ink is exactly these three lines' glyphs (whatever their colour).
      const lines = new Canvas(png.width, png.height);
      lines.text(L.caption, L.rowTop(k), `true: ${EXPRESSIONS[test[k].label]}`);
      lines.text(L.caption, L.rowTop(k) + L.lineHeight, `pred: ${EXPRESSIONS[here.expressions[k]]}`);
      lines.text(L.caption, L.rowTop(k) + 2 * L.lineHeight, formatPixelAccuracy(accuracy));
      for (let y = L.rowTop(k); y < L.rowTop(k) + 3 * L.lineHeight; y++) {
        for (let x = L.caption; x < L.legend; x++) expect(at(x, y).join(',') !== '255,255,255', `caption of row ${k} at (${x}, ${y})`).toBe(lines.data[(y * png.width + x) * 3] === 0);
      }
    }
    expect(formatPixelAccuracy(0.8754)).toBe('st acc: 87.5%');
    expect(formatPixelAccuracy(null)).toBe('st acc: n/a');
  });

  it('leaves no tensor behind', async () => {
    await selectBackend('wasm');
    await figure('warm.png');
    const before = tf.memory().numTensors;
    await figure('memory.png');
    expect(tf.memory().numTensors).toBe(before);
  });

  it('writes the same bytes twice', async () => {
    const a = readFileSync((await figure('first.png')).file);
    const b = readFileSync((await figure('second.png')).file);
    expect(a.equals(b)).toBe(true);
  });

  it('refuses a checkpoint without ST (baseline) before evaluating, saying to use a variant with ST', async () => {
    const file = join(data.base, 'baseline.png');
    const out = join(data.base, 'baseline-eval');
    // A dataset folder that does not exist: opening it would fail with SLFER_DATASET_NOT_FOUND, so
    // this error shows the check comes before the data is even opened.
    const e = (await evaluate({ checkpoint: baseline, backend: 'wasm', data: { root: join(data.base, 'nowhere') }, masks: { file }, out }).catch((x: unknown) => x)) as SlferError;
    expect(e.code).toBe('SLFER_VARIANT_WITHOUT_ST');
    expect(e.message).toContain('"baseline"');
    expect(e.hint).toContain('use a checkpoint of a variant with ST (st, ct_st, proposed');
    expect(existsSync(file) || existsSync(join(out, 'report.json'))).toBe(false);

    // Every variant without ST, ct included, is refused the same way; those with ST pass.
    for (const variant of VARIANTS) {
      const model = new SlferModel({ variant, width: 0.125, inputSize: S, seReduction: 16, numExpressions: EXPRESSIONS.length, numParts: NUM_PARTS }, 0);
      try {
        if (variantParts(variant).st) expect(() => requireSt(model, variant, 'ckpt')).not.toThrow();
        else expect(thrown(() => requireSt(model, variant, 'ckpt')).code).toBe('SLFER_VARIANT_WITHOUT_ST');
      } finally {
        model.dispose();
      }
    }
  });

  it('works end to end through the CLI: eval --masks with the default 8 rows, and its errors', () => {
    // The CLI runs the compiled sources: `npx tsc -p tsconfig.json` first.
    const cli = (args: string[]) => runCli(args);
    const file = join(data.base, 'cli', 'masks.png');
    const r = cli(['eval', '--checkpoint', run, '--backend', 'wasm', '--masks', file]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/test accuracy \d+\.\d\d% .* on 10 rafdb test images/);
    expect(r.stderr).toContain(`ST predictions of the first 8 test images: ${file}`);
    const png = decode(readFileSync(file));
    expect([png.width, png.height]).toEqual([masksFigureLayout(8, S).width, 16 + 8 * (42 + 4)]);

    const refused = cli(['eval', '--checkpoint', baseline, '--backend', 'wasm', '--masks', join(data.base, 'cli', 'baseline.png')]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('error SLFER_VARIANT_WITHOUT_ST');
    expect(refused.stderr).toContain('→ use a checkpoint of a variant with ST');

    const noMasks = cli(['eval', '--checkpoint', run, '--backend', 'wasm', '--masks-count', '3']);
    expect([noMasks.status, noMasks.stderr.includes('error SLFER_INVALID_ARGUMENT: --masks-count')]).toEqual([1, true]);
    const zero = cli(['eval', '--checkpoint', run, '--backend', 'wasm', '--masks', file, '--masks-count', '0']);
    expect([zero.status, zero.stderr.includes('--masks-count: 0 is not a positive whole number')]).toEqual([1, true]);
  });
});
