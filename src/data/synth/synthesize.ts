/**
 * Writes a synthetic face dataset in RAF-DB's basic on-disk layout, plus face-parsing masks:
 *
 *   EmoLabel/list_patition_label.txt    "train_00001.jpg 5" per line (labels 1..7), train first
 *   Image/aligned/<name>_aligned.jpg     RGB JPEG
 *   Mask/aligned/<name>_aligned.png      8-bit greyscale PNG of PARSING_CLASSES ids (read it back
 *                                        with sharp's .extractChannel(0).raw(): a bare .raw() widens
 *                                        greyscale to 3 identical channels)
 *   synth.json                           what generated it
 *
 * Each sample is a pure function of (seed, split, index), so the same options give the same bytes and
 * a sample does not change when the counts do. The folder appears under its final name only once
 * complete: it is built in a sibling `<out>.partial-<pid>` and renamed.
 */
import { mkdir, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { errors } from '../../errors.js';
import { Rng } from '../../util/rng.js';
import { EXPRESSIONS, NUM_EXPRESSIONS, PARSING_CLASSES } from '../labels.js';
import { drawFace, sampleFace } from './face.js';

export interface SynthesizeOptions {
  out: string;
  train: number;
  test: number;
  size: number;
  seed: number;
  /** Images being encoded and written at once (default 4). */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface SynthesizeResult {
  out: string;
  train: number;
  test: number;
  size: number;
  seed: number;
  /** Files written, label file and synth.json included. */
  files: number;
}

export const LABEL_FILE = 'EmoLabel/list_patition_label.txt';
const SPLITS = ['train', 'test'] as const;
/** Stream key that keeps label draws apart from the per-sample face streams. */
const LABEL_STREAM = 0x1abe1;

interface Item {
  name: string;
  split: number;
  index: number;
  label: number;
}

/**
 * Expression of sample `index`: each run of 7 consecutive samples holds every expression once, in an
 * order shuffled per run, so any count is balanced to within one and no label depends on the count.
 */
export function synthLabel(seed: number, split: number, index: number): number {
  const block = Math.floor(index / NUM_EXPRESSIONS);
  return new Rng(seed, LABEL_STREAM, split, block).permutation(NUM_EXPRESSIONS)[index % NUM_EXPRESSIONS];
}

/** RAF-DB's name for sample `index` (0-based) of a split: train_00001, test_0001, widened if `count` needs it. */
export function synthName(split: 'train' | 'test', index: number, count: number): string {
  const digits = Math.max(split === 'train' ? 5 : 4, String(count).length);
  return `${split}_${String(index + 1).padStart(digits, '0')}`;
}

export async function synthesize(opts: SynthesizeOptions): Promise<SynthesizeResult> {
  const { train, test, size, seed } = opts;
  const concurrency = opts.concurrency ?? 4;
  validate(opts, concurrency);
  const out = path.resolve(opts.out);
  await refuseNonEmpty(out);

  const items: Item[] = [];
  SPLITS.forEach((split, s) => {
    const count = s === 0 ? train : test;
    for (let i = 0; i < count; i++) items.push({ name: synthName(split, i, count), split: s, index: i, label: synthLabel(seed, s, i) });
  });

  const tmp = `${out}.partial-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  try {
    await mkdir(path.join(tmp, 'EmoLabel'), { recursive: true });
    await mkdir(path.join(tmp, 'Image', 'aligned'), { recursive: true });
    await mkdir(path.join(tmp, 'Mask', 'aligned'), { recursive: true });

    // Drawing is synchronous; encoding runs on sharp's thread pool, so a few workers pulling from
    // one queue keep the CPU busy drawing the next face while earlier ones are compressed. After a
    // failure the others stop taking work, and all have settled before the folder is removed.
    let next = 0;
    let done = 0;
    let failed = false;
    const worker = async () => {
      while (!failed && next < items.length) {
        const it = items[next++];
        try {
          await writeSample(tmp, it, seed, size);
          opts.onProgress?.(++done, items.length);
        } catch (e) {
          failed = true;
          throw e;
        }
      }
    };
    const settled = await Promise.allSettled(Array.from({ length: Math.min(concurrency, items.length) }, worker));
    const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;

    await writeFile(path.join(tmp, LABEL_FILE), items.map((it) => `${it.name}.jpg ${it.label + 1}\n`).join(''));
    const meta = { generator: 'slfer-dist synthetic faces', version: 1, seed, size, train, test, classes: EXPRESSIONS, maskClasses: PARSING_CLASSES };
    await writeFile(path.join(tmp, 'synth.json'), JSON.stringify(meta, null, 2) + '\n');

    await refuseNonEmpty(out); // someone may have filled it meanwhile
    // An empty folder at `out` is replaced; rmdir (not rm -r) so nothing else can ever be deleted.
    await rmdir(out).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return { out, train, test, size, seed, files: 2 * items.length + 2 };
}

async function writeSample(dir: string, it: Item, seed: number, size: number): Promise<void> {
  const { rgb, mask } = drawFace(sampleFace(new Rng(seed, it.split, it.index), it.label), size);
  const [jpg, png] = await Promise.all([
    sharp(rgb, { raw: { width: size, height: size, channels: 3 } }).jpeg({ quality: 92, mozjpeg: false }).toBuffer(),
    // Without toColourspace('b-w') sharp would widen the mask to an RGB PNG.
    sharp(mask, { raw: { width: size, height: size, channels: 1 } }).toColourspace('b-w').png().toBuffer(),
  ]);
  await Promise.all([
    writeFile(path.join(dir, 'Image', 'aligned', `${it.name}_aligned.jpg`), jpg),
    writeFile(path.join(dir, 'Mask', 'aligned', `${it.name}_aligned.png`), png),
  ]);
}

function validate(opts: SynthesizeOptions, concurrency: number): void {
  const int = (name: string, v: number, lo: number, hi: number) => {
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw errors.invalidArgument(`--${name}`, `must be an integer from ${lo} to ${hi}, got ${v}`, `pass --${name} <${lo}..${hi}>`);
    }
  };
  if (typeof opts.out !== 'string' || opts.out.trim() === '') {
    throw errors.invalidArgument('--out', 'is empty', 'pass --out <folder to create>');
  }
  int('train', opts.train, 1, 10_000_000);
  int('test', opts.test, 1, 10_000_000);
  int('size', opts.size, 32, 512);
  int('seed', opts.seed, 0, 0xffffffff);
  int('concurrency', concurrency, 1, 256);
}

async function refuseNonEmpty(out: string): Promise<void> {
  const st = await stat(out).catch(() => null);
  if (st === null) return;
  if (!st.isDirectory() || (await readdir(out)).length > 0) {
    throw errors.invalidArgument(
      '--out',
      `${out} already exists and is not an empty folder`,
      `pick another --out or delete ${out} first`,
    );
  }
}
