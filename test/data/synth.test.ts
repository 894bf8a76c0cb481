import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPRESSIONS, PARSING_CLASSES } from '../../src/data/labels.js';
import { Canvas, ellipse, intersect, polygon, quadBezier, ring, stroke, union, type Shape } from '../../src/data/synth/raster.js';
import { LABEL_FILE, synthesize, synthLabel, synthName } from '../../src/data/synth/synthesize.js';
import { Rng } from '../../src/util/rng.js';

const C = Object.fromEntries(PARSING_CLASSES.map((name, i) => [name, i])) as Record<string, number>;
const E = Object.fromEntries(EXPRESSIONS.map((name, i) => [name, i])) as Record<string, number>;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'slfer-synth-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function walk(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) out.push(...(await walk(dir, r)));
    else out.push(r);
  }
  return out.sort();
}

/** relative path -> sha256 of its bytes, for every file under dir. */
async function hashes(dir: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for (const f of await walk(dir)) m.set(f, createHash('sha256').update(await readFile(path.join(dir, f))).digest('hex'));
  return m;
}

async function readLabels(dir: string): Promise<{ name: string; label: number }[]> {
  const text = await readFile(path.join(dir, LABEL_FILE), 'utf8');
  return text.trimEnd().split('\n').map((l) => {
    const [name, label] = l.split(' ');
    return { name: name.replace(/\.jpg$/, ''), label: Number(label) - 1 };
  });
}

interface Decoded {
  name: string;
  label: number;
  size: number;
  rgb: Buffer;
  mask: Buffer;
  maskChannels: number;
}

async function decodeAll(dir: string): Promise<Decoded[]> {
  return Promise.all(
    (await readLabels(dir)).map(async ({ name, label }) => {
      const maskPath = path.join(dir, 'Mask', 'aligned', `${name}_aligned.png`);
      const meta = await sharp(maskPath).metadata();
      const mask = await sharp(maskPath).extractChannel(0).raw().toBuffer();
      const rgb = await sharp(path.join(dir, 'Image', 'aligned', `${name}_aligned.jpg`)).raw().toBuffer();
      return { name, label, size: meta.width, rgb, mask, maskChannels: meta.channels };
    }),
  );
}

/**
 * Pixel count and mean row of the pixels whose class is in `classes`, and the image's mean luma
 * there, or (dx, dy) pixels away to measure how much a misaligned mask would change it.
 */
function region(d: Decoded, classes: number[], dx = 0, dy = 0): { area: number; meanY: number; luma: number } {
  let area = 0;
  let sumY = 0;
  let sumL = 0;
  for (let y = 0; y < d.size; y++) {
    for (let x = 0; x < d.size; x++) {
      if (!classes.includes(d.mask[y * d.size + x])) continue;
      area++;
      sumY += y;
      const j = 3 * (Math.min(d.size - 1, Math.max(0, y + dy)) * d.size + Math.min(d.size - 1, Math.max(0, x + dx)));
      sumL += 0.299 * d.rgb[j] + 0.587 * d.rgb[j + 1] + 0.114 * d.rgb[j + 2];
    }
  }
  return { area, meanY: area ? sumY / area : NaN, luma: area ? sumL / area : NaN };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('raster', () => {
  /** White on black, so the image holds each pixel's coverage. */
  function draw(shape: Shape, size: number): Canvas {
    const cv = new Canvas(size);
    cv.fill(shape, [255, 255, 255], 1);
    return cv;
  }

  it('fills exactly what a per-pixel evaluation would (the quadtree never skips an edge)', () => {
    const rng = new Rng(9);
    const size = 160;
    const r = (lo: number, hi: number) => rng.uniform(lo, hi);
    for (let trial = 0; trial < 30; trial++) {
      const shapes: Shape[] = [
        ellipse(r(20, 140), r(20, 140), r(1, 70), r(1, 12), r(0, 3)),
        polygon(Array.from({ length: 7 }, (_, i) => [80 + r(20, 70) * Math.cos(i * 0.9), 80 + r(20, 70) * Math.sin(i * 0.9)] as const)),
        stroke(quadBezier([r(0, 160), r(0, 160)], [r(0, 160), r(0, 160)], [r(0, 160), r(0, 160)]), Array.from({ length: 13 }, (_, i) => 12 - 0.8 * i)),
        ring(ellipse(80, 80, r(20, 60), r(10, 40), r(0, 3)), r(1, 9)),
        intersect(union(ellipse(60, 80, 40, 30), ellipse(100, 80, 30, 50)), polygon([[0, 0], [160, 40], [160, 160], [0, 120]])),
      ];
      const shape = shapes[trial % shapes.length];
      const cv = draw(shape, size);
      const wrong: string[] = [];
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const d = shape.sd(x + 0.5, y + 0.5);
          const i = y * size + x;
          const ok = cv.mask[i] === (d < 0 ? 1 : 0) && cv.rgb[3 * i] === Math.round(255 * Math.min(1, Math.max(0, 0.5 - d)));
          if (!ok) wrong.push(`(${x}, ${y})`);
        }
      }
      expect(wrong, `trial ${trial}`).toEqual([]);
    }
  });

  it('anti-aliases edges but labels whole pixels, covering the area drawn', () => {
    const cv = draw(ellipse(50.3, 49.6, 30, 18, 0.4), 100);
    const labelled = cv.mask.reduce((a, v) => a + v, 0);
    const coverage = cv.rgb.filter((_, i) => i % 3 === 0).reduce((a, v) => a + v / 255, 0);
    expect(Math.abs(labelled - Math.PI * 30 * 18)).toBeLessThan(30);
    expect(Math.abs(coverage - Math.PI * 30 * 18)).toBeLessThan(10);
    expect(cv.rgb.some((v) => v > 0 && v < 255)).toBe(true);
  });
});

describe('synthesize: reproducibility', () => {
  it('writes identical bytes for the same seed, whatever the concurrency', async () => {
    const a = await synthesize({ out: path.join(root, 'same-a'), train: 14, test: 7, size: 48, seed: 11 });
    const b = await synthesize({ out: path.join(root, 'same-b'), train: 14, test: 7, size: 48, seed: 11, concurrency: 1 });
    const ha = await hashes(a.out);
    expect(ha.size).toBe(a.files);
    expect(await hashes(b.out)).toEqual(ha);
  });

  it('writes different images for a different seed', async () => {
    const a = await hashes(path.join(root, 'same-a'));
    const c = await hashes((await synthesize({ out: path.join(root, 'seed-12'), train: 14, test: 7, size: 48, seed: 12 })).out);
    expect([...c.keys()]).toEqual([...a.keys()]);
    const images = [...a.keys()].filter((f) => f.endsWith('.jpg'));
    expect(images.filter((f) => a.get(f) !== c.get(f)).length).toBe(images.length);
  });

  it('keeps each sample independent of the counts', async () => {
    const a = await hashes(path.join(root, 'same-a'));
    const d = await hashes((await synthesize({ out: path.join(root, 'more'), train: 20, test: 3, size: 48, seed: 11 })).out);
    const shared = [...a.keys()].filter((f) => /(train_000(0\d|1[0-4])|test_000[1-3])_aligned/.test(f));
    expect(shared.length).toBe(2 * 17);
    for (const f of shared) expect(d.get(f), f).toBe(a.get(f));
  });
});

describe('synthesize: layout', () => {
  let data: Decoded[];
  const dir = () => path.join(root, 'main');

  beforeAll(async () => {
    const progress: number[] = [];
    const res = await synthesize({ out: dir(), train: 70, test: 14, size: 100, seed: 5, onProgress: (done, total) => progress.push(done / total) });
    expect(res).toMatchObject({ out: dir(), train: 70, test: 14, size: 100, seed: 5, files: 2 * 84 + 2 });
    expect(progress.length).toBe(84);
    expect(progress.at(-1)).toBe(1);
    data = await decodeAll(dir());
  });

  it('follows RAF-DB basic: label file, aligned images, masks, synth.json, nothing else', async () => {
    const text = await readFile(path.join(dir(), LABEL_FILE), 'utf8');
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBe(84);
    lines.slice(0, 70).forEach((l, i) => expect(l).toBe(`train_${String(i + 1).padStart(5, '0')}.jpg ${l.split(' ')[1]}`));
    lines.slice(70).forEach((l, i) => expect(l).toBe(`test_${String(i + 1).padStart(4, '0')}.jpg ${l.split(' ')[1]}`));
    for (const l of lines) expect(l).toMatch(/^(train_\d{5}|test_\d{4})\.jpg [1-7]$/);

    const names = lines.map((l) => l.split('.')[0]);
    expect(await walk(dir())).toEqual(
      [
        LABEL_FILE,
        'synth.json',
        ...names.map((n) => path.join('Image', 'aligned', `${n}_aligned.jpg`)),
        ...names.map((n) => path.join('Mask', 'aligned', `${n}_aligned.png`)),
      ].sort(),
    );
    expect(JSON.parse(await readFile(path.join(dir(), 'synth.json'), 'utf8'))).toMatchObject({
      generator: 'slfer-dist synthetic faces',
      version: 1,
      seed: 5,
      size: 100,
      train: 70,
      test: 14,
      classes: [...EXPRESSIONS],
    });
    const leftovers = (await readdir(root)).filter((f) => f.includes('.partial-'));
    expect(leftovers).toEqual([]);
  });

  it('writes 3-channel JPEGs and single-channel 8-bit PNG masks of parsing ids', async () => {
    const jpg = await sharp(path.join(dir(), 'Image', 'aligned', 'train_00001_aligned.jpg')).metadata();
    expect(jpg).toMatchObject({ format: 'jpeg', width: 100, height: 100, channels: 3 });
    const png = await sharp(path.join(dir(), 'Mask', 'aligned', 'train_00001_aligned.png')).metadata();
    expect(png).toMatchObject({ format: 'png', width: 100, height: 100, channels: 1, depth: 'uchar', isPalette: false });
    for (const d of data) {
      expect(d.maskChannels).toBe(1);
      expect(d.mask.length).toBe(100 * 100);
      expect(Math.max(...d.mask)).toBeLessThanOrEqual(18);
    }
  });

  it('widens names only when the count needs more digits', () => {
    expect(synthName('train', 0, 2000)).toBe('train_00001');
    expect(synthName('test', 499, 500)).toBe('test_0500');
    expect(synthName('train', 122_999, 123_000)).toBe('train_123000');
    expect(synthName('test', 0, 12_345)).toBe('test_00001');
  });

  it('balances the expressions in each split and for any count', () => {
    const count = (xs: number[]) => EXPRESSIONS.map((_, e) => xs.filter((x) => x === e).length);
    expect(count(data.filter((d) => d.name.startsWith('train')).map((d) => d.label))).toEqual(Array(7).fill(10));
    expect(count(data.filter((d) => d.name.startsWith('test')).map((d) => d.label))).toEqual(Array(7).fill(2));
    const odd = count(Array.from({ length: 61 }, (_, i) => synthLabel(3, 0, i)));
    expect(Math.max(...odd) - Math.min(...odd)).toBeLessThanOrEqual(1);
    // Shuffled, not cyclic.
    const first = Array.from({ length: 14 }, (_, i) => synthLabel(5, 0, i));
    expect(first.slice(0, 7)).not.toEqual(first.slice(7));
  });

  it('draws every facial part in most faces', () => {
    const parts: Record<string, number[]> = {
      background: [C.background],
      skin: [C.skin],
      brows: [C.l_brow, C.r_brow],
      eyes: [C.l_eye, C.r_eye],
      nose: [C.nose],
      lips: [C.u_lip, C.l_lip],
      hair: [C.hair],
    };
    for (const [part, classes] of Object.entries(parts)) {
      const present = data.filter((d) => region(d, classes).area >= 3).length;
      expect(present / data.length, part).toBeGreaterThanOrEqual(0.8);
    }
    // Accessories and occluders do occur, but not everywhere.
    for (const cls of [C.eye_g, C.hat]) {
      const present = data.filter((d) => region(d, [cls]).area > 0).length;
      expect(present).toBeGreaterThan(0);
      expect(present).toBeLessThan(data.length / 2);
    }
  });

  it('aligns masks with images: open mouths and brows are darker than the skin around them', () => {
    const mouths = data.filter((d) => region(d, [C.mouth]).area >= 10 && d.label === E.Surprise);
    expect(mouths.length).toBeGreaterThanOrEqual(5);
    const mouthLuma = (dx = 0, dy = 0) => mean(mouths.map((d) => region(d, [C.mouth], dx, dy).luma));
    expect(mouthLuma()).toBeLessThan(mean(mouths.map((d) => region(d, [C.skin]).luma)) - 30);
    // The dark opening is where the mask says: the mask moved by 3 px in any direction sees it brighter.
    for (const [dx, dy] of [[3, 0], [-3, 0], [0, 3], [0, -3]]) expect(mouthLuma(dx, dy), `${dx},${dy}`).toBeGreaterThan(mouthLuma() + 8);
    const darkBrows = data.filter((d) => region(d, [C.l_brow, C.r_brow]).luma < region(d, [C.skin]).luma - 10);
    expect(darkBrows.length / data.length).toBeGreaterThanOrEqual(0.9);
  });

  it('gives expressions measurably different geometry', () => {
    const train = data.filter((d) => d.name.startsWith('train'));
    const by = (e: string, fn: (d: Decoded) => number) => mean(train.filter((d) => d.label === E[e]).map(fn));
    const mouthArea = (d: Decoded) => region(d, [C.mouth, C.u_lip, C.l_lip]).area;
    // Eyes' row minus brows' row: how far the brows sit above the eyes.
    const browGap = (d: Decoded) => region(d, [C.l_eye, C.r_eye]).meanY - region(d, [C.l_brow, C.r_brow]).meanY;
    const open = (d: Decoded) => region(d, [C.mouth]).area;

    expect(by('Surprise', mouthArea)).toBeGreaterThan(1.5 * by('Neutral', mouthArea));
    expect(by('Surprise', browGap)).toBeGreaterThan(by('Anger', browGap) + 3);
    expect(by('Surprise', browGap)).toBeGreaterThan(by('Neutral', browGap) + 2);
    expect(by('Neutral', browGap)).toBeGreaterThan(by('Anger', browGap) + 1);
    expect(by('Neutral', open)).toBe(0);
    expect(by('Surprise', open)).toBeGreaterThan(by('Fear', open));
  });
});

describe('synthesize: refusals', () => {
  it('refuses an existing non-empty --out and leaves it alone', async () => {
    const out = path.join(root, 'taken');
    await mkdir(out);
    await writeFile(path.join(out, 'keep.txt'), 'mine');
    const err = await synthesize({ out, train: 7, test: 7, size: 32, seed: 1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SLFER_INVALID_ARGUMENT' });
    expect((err as Error).message).toContain(out);
    expect((err as { hint: string }).hint).toMatch(/another --out|delete/);
    expect(await readdir(out)).toEqual(['keep.txt']);
  });

  it('fills an existing empty folder', async () => {
    const out = path.join(root, 'empty');
    await mkdir(out);
    await synthesize({ out, train: 7, test: 7, size: 32, seed: 1 });
    expect(existsSync(path.join(out, LABEL_FILE))).toBe(true);
  });

  it.each([
    ['size', { size: 31 }],
    ['size', { size: 513 }],
    ['train', { train: 0 }],
    ['test', { test: 2.5 }],
    ['seed', { seed: -1 }],
    ['concurrency', { concurrency: 0 }],
  ])('validates --%s', async (option, bad) => {
    const out = path.join(root, `bad-${option}`);
    const err = await synthesize({ out, train: 7, test: 7, size: 32, seed: 1, ...bad }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SLFER_INVALID_ARGUMENT' });
    expect((err as Error).message).toContain(`--${option}`);
    expect(existsSync(out)).toBe(false);
  });

  it('leaves neither the output nor a partial folder when generation fails', async () => {
    const out = path.join(root, 'fails');
    const boom = new Error('interrupted');
    const err = await synthesize({
      out, train: 30, test: 7, size: 32, seed: 1,
      onProgress: (done) => {
        if (done === 5) throw boom;
      },
    }).catch((e: unknown) => e);
    expect(err).toBe(boom);
    expect(existsSync(out)).toBe(false);
    expect((await readdir(root)).filter((f) => f.startsWith('fails'))).toEqual([]);
  });
});
