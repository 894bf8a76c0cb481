/**
 * Every bad input a user's dataset can hold, each as a change to a small real RAF-DB tree (synthetic
 * JPEG faces with 19-class PNG masks), with the treatment slfer-dist promises for it (README, "Bad
 * input"): used correctly, skipped and listed with its reason, or the run stopped with an error
 * naming the file. The engine tables (test/data/bad-input.*.test.ts) train on each one.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { decode, encode } from 'fast-png';
import sharp, { type Sharp } from 'sharp';
import { expect } from 'vitest';
import type { ConfigInput } from '../../src/config.js';
import { readRafDb } from '../../src/data/rafdb.js';
import { epochIndices } from '../../src/data/sampler.js';
import { synthesize, LABEL_FILE } from '../../src/data/synth/synthesize.js';
import { isSlferError, type SlferErrorCode } from '../../src/errors.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { train, type TrainResult } from '../../src/train/trainer.js';

export const SIZE = 40; // images and masks on disk
export const TRAIN = 6;
export const BATCH = 3; // two steps an epoch; a skipped image leaves an odd or even batch of 2
export const SEED = 5;

export type Treatment =
  | { kind: 'used' }
  /** `files`: paths relative to the dataset root, each listed with a reason matching `reason`. */
  | { kind: 'skipped'; files: string[]; reason: RegExp }
  | { kind: 'stopped'; code: SlferErrorCode; names: string };

export interface BadInputCase {
  name: string;
  kind: 'image' | 'mask' | 'labels';
  /** Changes the dataset at `root` (a copy of the base tree). */
  make(root: string): Promise<void>;
  treatment: Treatment;
  skipMissingMasks?: boolean;
}

export const image = (n: number) => `Image/aligned/train_${String(n).padStart(5, '0')}_aligned.jpg`;
export const mask = (n: number) => `Mask/aligned/train_${String(n).padStart(5, '0')}_aligned.png`;

/** Rewrites a file through sharp (read fully first: the output replaces the input). */
async function reencode(path: string, f: (s: Sharp) => Sharp): Promise<void> {
  const data = await f(sharp(readFileSync(path))).toBuffer();
  writeFileSync(path, data);
}

/** The base mask's class ids (8-bit greyscale, as synthesize writes them). */
function maskIds(path: string): { width: number; height: number; ids: Uint8Array } {
  const png = decode(readFileSync(path));
  return { width: png.width, height: png.height, ids: Uint8Array.from(png.data) };
}

/** The training images (their numbers) of `rank`'s first batch of epoch 0, as the seeded sampler orders them. */
export function firstBatch(root: string, rank = 0, worldSize = 1): number[] {
  const samples = readRafDb(root).train;
  const order = epochIndices({ n: samples.length, epoch: 0, seed: SEED, shuffle: true, rank, worldSize });
  return Array.from(order.subarray(0, BATCH), (i) => Number(samples[i].id.slice('train_'.length)));
}

const labelPath = (root: string) => join(root, LABEL_FILE);

export const CASES: BadInputCase[] = [
  // Images: unreadable ones are skipped and listed; anything libvips decodes is used.
  { name: 'a truncated JPEG', kind: 'image', make: async (r) => truncateSync(join(r, image(2)), 120), treatment: { kind: 'skipped', files: [image(2)], reason: /premature end|corrupt|truncated/i } },
  { name: 'a zero-byte file', kind: 'image', make: async (r) => writeFileSync(join(r, image(2)), ''), treatment: { kind: 'skipped', files: [image(2)], reason: /.+/ } },
  { name: 'a text file named .jpg', kind: 'image', make: async (r) => writeFileSync(join(r, image(3)), 'this is not an image\n'), treatment: { kind: 'skipped', files: [image(3)], reason: /unsupported image format/ } },
  { name: 'a PNG saved as .jpg', kind: 'image', make: (r) => reencode(join(r, image(1)), (s) => s.png()), treatment: { kind: 'used' } },
  { name: 'a grayscale JPEG', kind: 'image', make: (r) => reencode(join(r, image(1)), (s) => s.greyscale().jpeg()), treatment: { kind: 'used' } },
  { name: 'a CMYK JPEG', kind: 'image', make: (r) => reencode(join(r, image(1)), (s) => s.toColourspace('cmyk').jpeg()), treatment: { kind: 'used' } },
  { name: 'a 16-bit PNG', kind: 'image', make: (r) => reencode(join(r, image(1)), (s) => s.toColourspace('rgb16').png()), treatment: { kind: 'used' } },
  { name: 'an RGBA PNG', kind: 'image', make: (r) => reencode(join(r, image(1)), (s) => s.ensureAlpha(0.5).png()), treatment: { kind: 'used' } },
  { name: 'an image far larger than the crop (4000x4000)', kind: 'image', make: (r) => reencode(join(r, image(1)), (s) => s.resize(4000, 4000).jpeg()), treatment: { kind: 'used' } },
  { name: 'an image smaller than the crop', kind: 'image', make: (r) => reencode(join(r, image(1)), (s) => s.resize(16, 16).jpeg()), treatment: { kind: 'used' } },
  { name: 'a listed image that does not exist', kind: 'image', make: async (r) => unlinkSync(join(r, image(4))), treatment: { kind: 'skipped', files: [image(4)], reason: /^missing file$/ } },
  {
    name: 'a batch in which every image fails',
    kind: 'image',
    make: async (r) => firstBatch(r).forEach((n) => writeFileSync(join(r, image(n)), '')),
    treatment: { kind: 'skipped', files: [], reason: /.+/ }, // files: filled in by everyImageOfTheFirstBatch
  },
  // Masks: a missing one stops the run unless --skip-missing-masks; one that would train the wrong
  // thing stops it; one whose values are valid class ids in another encoding is used.
  { name: 'a missing mask', kind: 'mask', make: async (r) => unlinkSync(join(r, mask(2))), treatment: { kind: 'stopped', code: 'SLFER_MASK_MISSING', names: mask(2) } },
  { name: 'a missing mask, with --skip-missing-masks', kind: 'mask', skipMissingMasks: true, make: async (r) => unlinkSync(join(r, mask(2))), treatment: { kind: 'skipped', files: [image(2)], reason: /^no mask$/ } },
  {
    name: 'a mask of another resolution, same aspect ratio (as BiSeNet writes 512x512)',
    kind: 'mask',
    make: (r) => reencode(join(r, mask(1)), (s) => s.resize(2 * SIZE, 2 * SIZE, { kernel: 'nearest' }).extractChannel(0).png()),
    treatment: { kind: 'used' },
  },
  {
    name: 'a mask of another aspect ratio than its image',
    kind: 'mask',
    make: (r) => reencode(join(r, mask(1)), (s) => s.resize(SIZE, (3 * SIZE) / 4, { kernel: 'nearest', fit: 'fill' }).extractChannel(0).png()),
    treatment: { kind: 'stopped', code: 'SLFER_MASK_INVALID', names: mask(1) },
  },
  {
    name: 'a mask with class ids of 19 or more',
    kind: 'mask',
    make: async (r) => {
      const m = maskIds(join(r, mask(1)));
      m.ids[5] = 19;
      writeFileSync(join(r, mask(1)), encode({ width: m.width, height: m.height, data: m.ids, channels: 1, depth: 8 }));
    },
    treatment: { kind: 'stopped', code: 'SLFER_MASK_INVALID', names: mask(1) },
  },
  {
    name: 'a colour-rendered (RGB) mask',
    kind: 'mask',
    make: async (r) => {
      const m = maskIds(join(r, mask(1)));
      const rgb = new Uint8Array(3 * m.ids.length);
      m.ids.forEach((id, i) => rgb.set([(id * 53) % 256, (id * 97) % 256, (id * 151) % 256], 3 * i));
      writeFileSync(join(r, mask(1)), encode({ width: m.width, height: m.height, data: rgb, channels: 3, depth: 8 }));
    },
    treatment: { kind: 'stopped', code: 'SLFER_MASK_INVALID', names: mask(1) },
  },
  {
    name: 'a palette (indexed) PNG mask whose indices are the classes',
    kind: 'mask',
    make: async (r) => writeFileSync(join(r, mask(1)), paletteMask(maskIds(join(r, mask(1))))),
    treatment: { kind: 'used' },
  },
  {
    name: 'a 16-bit mask',
    kind: 'mask',
    make: async (r) => {
      const m = maskIds(join(r, mask(1)));
      writeFileSync(join(r, mask(1)), encode({ width: m.width, height: m.height, data: Uint16Array.from(m.ids), channels: 1, depth: 16 }));
    },
    treatment: { kind: 'used' },
  },
  // Label files.
  {
    name: 'a label file with CRLF line ends and a UTF-8 BOM',
    kind: 'labels',
    make: async (r) => writeFileSync(labelPath(r), '\uFEFF' + readFileSync(labelPath(r), 'utf8').replace(/\n/g, '\r\n')),
    treatment: { kind: 'used' },
  },
  {
    name: 'a label file with tabs and extra spaces',
    kind: 'labels',
    make: async (r) => writeFileSync(labelPath(r), readFileSync(labelPath(r), 'utf8').replace(/^(\S+) (\S+)$/gm, '  $1\t \t$2   ')),
    treatment: { kind: 'used' },
  },
  {
    name: 'a label file with a duplicate name',
    kind: 'labels',
    make: async (r) => writeFileSync(labelPath(r), readFileSync(labelPath(r), 'utf8') + 'train_00003.jpg 2\n'),
    treatment: { kind: 'stopped', code: 'SLFER_LABEL_INVALID', names: `${LABEL_FILE}:${TRAIN + 2 + 1}` },
  },
  {
    name: 'a label file with a trailing blank line',
    kind: 'labels',
    make: async (r) => writeFileSync(labelPath(r), readFileSync(labelPath(r), 'utf8') + '\n   \n'),
    treatment: { kind: 'used' },
  },
];

/** The mask as an 8-bit palette PNG whose indices are its class ids, the palette CelebAMask-HQ's colours (as PIL's "P" mode saves it). */
export function paletteMask(m: { width: number; height: number; ids: Uint8Array }): Uint8Array {
  const palette = Array.from({ length: 19 }, (_, i): [number, number, number] => [(i * 53) % 256, (i * 97) % 256, (i * 151) % 256]);
  return encode({ width: m.width, height: m.height, data: m.ids, channels: 1, depth: 8, palette });
}

/** A small RAF-DB tree (6 train, 2 test faces with masks by default), written once per test file. */
export async function baseDataset(train = TRAIN): Promise<{ root: string; remove: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'slfer-bad-input-'));
  const root = join(dir, 'base');
  await synthesize({ out: root, train, test: 2, size: SIZE, seed: 3 });
  return { root, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A copy of the base tree with a change made (`make`, a case's), beside it. */
export async function caseDataset(base: string, c: Pick<BadInputCase, 'name' | 'make'>, tag: string): Promise<string> {
  const root = join(base, '..', `${tag}-${c.name.replace(/[^a-z0-9]+/gi, '-')}`);
  rmSync(root, { recursive: true, force: true });
  cpSync(base, root, { recursive: true });
  await c.make(root);
  return root;
}

/** What the case promises, with the files of "every image of a batch" resolved for this tree. */
export function treatmentFor(c: BadInputCase, root: string): Treatment {
  if (c.name !== 'a batch in which every image fails' || c.treatment.kind !== 'skipped') return c.treatment;
  return { ...c.treatment, files: firstBatch(root).map(image) };
}

export function configFor(root: string, backend: string, c: Pick<BadInputCase, 'skipMissingMasks'> = {}): ConfigInput {
  return {
    data: { dataset: 'rafdb', root, resize: 72, threads: 1, skipMissingMasks: c.skipMissingMasks ?? false },
    model: { variant: 'proposed', width: 0.125, inputSize: 64 },
    train: { epochs: 1, batchSize: BATCH, lr: 1e-3, milestones: [], seed: SEED },
    engine: { backend: backend as 'cpu' },
  };
}

export type Outcome = { ok: true; result: TrainResult; runDir: string } | { ok: false; error: unknown; runDir: string };

/** One short training (2 steps and an evaluation) on the case's tree; errors are returned, not thrown. */
export async function trainCase(root: string, backend: string, c: BadInputCase): Promise<Outcome> {
  const runDir = `${root}-run-${backend}`;
  rmSync(runDir, { recursive: true, force: true });
  try {
    return { ok: true, result: await train({ config: configFor(root, backend, c), out: runDir }), runDir };
  } catch (error) {
    return { ok: false, error, runDir };
  }
}

/** Every file under dir, relative to it. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

/** Asserts that the outcome is the treatment the case promises. */
export function expectTreatment(outcome: Outcome, treatment: Treatment, root: string): void {
  const abs = (p: string) => join(root, p);
  // Whatever happened, nothing half-written: no temporary files, and a checkpoint only if complete.
  const files = filesUnder(outcome.runDir);
  expect(files.filter((f) => /\.tmp|~$/.test(f))).toEqual([]);
  for (const dir of new Set(files.flatMap((f) => f.match(/^checkpoints\/epoch-\d+/) ?? []))) {
    expect(files, `${dir} is complete`).toEqual(expect.arrayContaining([`${dir}/tensors.bin`, `${dir}/manifest.json`]));
  }
  if (treatment.kind === 'stopped') {
    expect(outcome.ok, 'the run stopped').toBe(false);
    const e = (outcome as { error: unknown }).error;
    expect(isSlferError(e) ? `${e.code}: ${e.message}` : String(e)).toContain(treatment.code);
    expect((e as Error).message).toContain(abs(treatment.names));
    expect(files.filter((f) => f.startsWith('checkpoints/'))).toEqual([]);
    return;
  }
  if (!outcome.ok) throw outcome.error;
  const { result } = outcome;
  expect(loadCheckpoint(outcome.runDir).epoch).toBe(1);
  expect(result.metrics).toHaveLength(1);
  expect(Number.isFinite(result.metrics[0].trainLoss)).toBe(true);
  const listed = result.report.skipped;
  if (treatment.kind === 'used') {
    expect(listed).toEqual([]);
    return;
  }
  expect(listed.map((s) => s.path).sort()).toEqual(treatment.files.map(abs).sort());
  for (const s of listed) expect(s.reason).toMatch(treatment.reason);
}

/** Tensors alive now on the current backend (a case must leave none behind). */
export const liveTensors = () => tf.memory().numTensors;
