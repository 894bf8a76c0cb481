import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode, encode } from 'fast-png';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MaskInvalid, MaskUnreadable, readMaskClasses } from '../../src/data/mask-file.js';
import { ImagePipeline } from '../../src/data/pipeline.js';
import type { Batch, Sample } from '../../src/data/types.js';
import { isSlferError } from '../../src/errors.js';
import { tempDir, writeMask, writeRgb } from './fixtures.js';

// What "used correctly" means for each image and mask encoding a dataset may hold: the pixels and
// class ids the pipeline hands the engine are those of the plain 8-bit original.
const W = 40;
const CROP = 32;
const { dir, remove } = tempDir('formats');
const at = (f: string) => join(dir, f);
const rgb = (x: number, y: number): [number, number, number] => [(x * 6) % 256, (y * 6) % 256, ((x + y) * 3) % 256];
const classOf = (x: number, y: number) => (x + 2 * y) % 19;

let pipeline: ImagePipeline;
beforeAll(async () => {
  await writeRgb(at('rgb.png'), W, W, rgb);
  await writeMask(at('mask.png'), W, W, classOf);
  pipeline = new ImagePipeline({ threads: 1, resize: W, inputSize: CROP, mean: [0, 0, 0], std: [1, 1, 1], withMasks: true, topN: 4 });
});
afterAll(async () => {
  await pipeline.close();
  remove();
});

async function decodeOne(imagePath: string, maskPath = at('mask.png')): Promise<Batch> {
  const s: Sample = { id: 'x', imagePath, maskPath, expectedMaskPath: maskPath, label: 0 };
  for await (const b of pipeline.batches([s], Int32Array.of(0), { batchSize: 1, train: false, hflip: false, seed: 0, epoch: 0, dropLastBatch: false })) return b;
  throw new Error('no batch');
}

const meanAbs = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;

describe('images in every encoding a dataset holds', () => {
  let reference: Float32Array;
  beforeAll(async () => {
    reference = (await decodeOne(at('rgb.png'))).images;
  });
  const variant = async (name: string, f: (s: Sharp) => Sharp) => {
    writeFileSync(at(name), await f(sharp(at('rgb.png'))).toBuffer());
    const b = await decodeOne(at(name));
    expect(b.skipped).toEqual([]);
    expect(b.size).toBe(1);
    return b.images;
  };

  it('a PNG under a .jpg name decodes as the PNG it is, pixel for pixel', async () => {
    expect(await variant('png.jpg', (s) => s.png())).toEqual(reference);
  });
  it('an RGBA PNG decodes to its colour channels (alpha dropped)', async () => {
    expect(await variant('rgba.png', (s) => s.ensureAlpha(0.3).png())).toEqual(reference);
  });
  it('a 16-bit PNG decodes to the 8-bit values within one level', async () => {
    const got = await variant('rgb16.png', (s) => s.toColourspace('rgb16').png());
    expect(Math.max(...got.map((v, i) => Math.abs(v - reference[i])))).toBeLessThanOrEqual(1 / 255 + 1e-6);
  });
  it('a grayscale JPEG decodes to three equal channels', async () => {
    const got = await variant('grey.jpg', (s) => s.greyscale().jpeg({ quality: 95 }));
    for (let i = 0; i < got.length; i += 3) expect([got[i + 1], got[i + 2]]).toEqual([got[i], got[i]]);
  });
  it('a CMYK JPEG decodes to its sRGB colours', async () => {
    const plain = await variant('plain.jpg', (s) => s.jpeg({ quality: 95 }));
    const cmyk = await variant('cmyk.jpg', (s) => s.toColourspace('cmyk').jpeg({ quality: 95 }));
    // Through CMYK and back without a profile: within a few levels on average (inverted or swapped
    // channels would be off by a third of the range).
    expect(meanAbs(cmyk, plain)).toBeLessThan(12 / 255);
  });
});

describe('masks in every encoding face-parsing tools write', () => {
  let reference: Uint8Array;
  let ids: Uint8Array;
  beforeAll(async () => {
    reference = (await decodeOne(at('rgb.png'))).masks!;
    ids = Uint8Array.from(decode(readFileSync(at('mask.png'))).data);
  });
  const write = (name: string, png: Uint8Array) => (writeFileSync(at(name), png), at(name));
  const masksOf = async (path: string) => {
    const b = await decodeOne(at('rgb.png'), path);
    expect(b.skipped).toEqual([]);
    return b.masks!;
  };

  it('a palette PNG: the indices are the classes, whatever the palette colours', async () => {
    const palette = Array.from({ length: 19 }, (_, i): [number, number, number] => [255 - i, (i * 40) % 256, 7]);
    expect(await masksOf(write('palette.png', encode({ width: W, height: W, data: ids, channels: 1, depth: 8, palette })))).toEqual(reference);
  });
  it('a 4-bit palette PNG (packed indices) and a 4-bit greyscale PNG', async () => {
    const small = ids.map((v) => v % 16);
    const packed = new Uint8Array((W / 2) * W);
    for (let i = 0; i < small.length; i += 2) packed[i / 2] = (small[i] << 4) | small[i + 1];
    const palette = Array.from({ length: 16 }, (_, i): [number, number, number] => [i * 16, 0, 0]);
    const want = (await readMaskClasses(write('small8.png', encode({ width: W, height: W, data: small, channels: 1, depth: 8 })), { width: W, height: W })).classes;
    expect(want).toEqual(small);
    for (const [name, extra] of [['pal4.png', { palette }], ['grey4.png', {}]] as const) {
      const got = await readMaskClasses(write(name, encode({ width: W, height: W, data: packed, channels: 1, depth: 4, ...extra })), { width: W, height: W });
      expect(got.classes, name).toEqual(small);
    }
  });
  it('a 16-bit greyscale PNG: the values are the classes (not scaled to 8 bits)', async () => {
    expect(await masksOf(write('mask16.png', encode({ width: W, height: W, data: Uint16Array.from(ids), channels: 1, depth: 16 })))).toEqual(reference);
  });
  it('greyscale with alpha, and RGB whose channels are equal: the grey value', async () => {
    const ga = new Uint8Array(2 * ids.length);
    ids.forEach((v, i) => ga.set([v, 255], 2 * i));
    expect(await masksOf(write('ga.png', encode({ width: W, height: W, data: ga, channels: 2, depth: 8 })))).toEqual(reference);
    const rgbEqual = new Uint8Array(3 * ids.length);
    ids.forEach((v, i) => rgbEqual.set([v, v, v], 3 * i));
    expect(await masksOf(write('rgb-equal.png', encode({ width: W, height: W, data: rgbEqual, channels: 3, depth: 8 })))).toEqual(reference);
  });
  it('a mask at twice the resolution (same aspect ratio) gives the same classes', async () => {
    const big = new Uint8Array(4 * ids.length);
    for (let y = 0; y < 2 * W; y++) for (let x = 0; x < 2 * W; x++) big[y * 2 * W + x] = ids[(y >> 1) * W + (x >> 1)];
    expect(await masksOf(write('big.png', encode({ width: 2 * W, height: 2 * W, data: big, channels: 1, depth: 8 })))).toEqual(reference);
  });

  it('refuses what would train the wrong thing, saying what and where', async () => {
    const refused = async (png: Uint8Array, image = { width: W, height: W }) => {
      const e = await readMaskClasses(write('refused.png', png), image).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(MaskInvalid);
      return (e as Error).message;
    };
    const colour = new Uint8Array(3 * ids.length);
    ids.forEach((v, i) => colour.set([v * 13, v * 7, 200], 3 * i));
    expect(await refused(encode({ width: W, height: W, data: colour, channels: 3, depth: 8 }))).toMatch(/is a colour picture \(pixel \(0, 0\) is rgb\(0, 0, 200\)\)/);
    const high = Uint16Array.from(ids);
    high[W + 3] = 300;
    expect(await refused(encode({ width: W, height: W, data: high, channels: 1, depth: 16 }))).toMatch(/class id 300 at pixel \(3, 1\)/);
    expect(await refused(encode({ width: W, height: W, data: ids, channels: 1, depth: 8 }), { width: 40, height: 30 })).toMatch(/is 40x40 for a 40x30 image: another aspect ratio/);
  });

  it('a file that is not a readable PNG is unreadable (skipped), not refused', async () => {
    const good = encode({ width: W, height: W, data: ids, channels: 1, depth: 8 });
    for (const [name, bytes, reason] of [
      ['empty.png', new Uint8Array(0), /empty file/],
      ['jpeg.png', readFileSync(at('plain.jpg')), /not a PNG file/],
      ['cut.png', good.subarray(0, 60), /mask: .+/],
    ] as const) {
      const e = await readMaskClasses(write(name, bytes), { width: W, height: W }).catch((x: unknown) => x);
      expect(e, name).toBeInstanceOf(MaskUnreadable);
      expect((e as Error).message, name).toMatch(reason);
    }
    const b = await decodeOne(at('rgb.png'), at('cut.png'));
    expect(b.size).toBe(0);
    expect(b.skipped).toEqual([{ path: at('cut.png'), reason: expect.stringMatching(/^mask: /) }]);
  });

  it('through the pipeline, a refused mask is a SlferError naming the file (SLFER_MASK_INVALID)', async () => {
    const bad = Uint8Array.from(ids);
    bad[7] = 19;
    const path = write('id19.png', encode({ width: W, height: W, data: bad, channels: 1, depth: 8 }));
    const e = await decodeOne(at('rgb.png'), path).catch((x: unknown) => x);
    expect(isSlferError(e) && e.code).toBe('SLFER_MASK_INVALID');
    expect((e as Error).message).toBe(`mask ${path} holds the class id 19 at pixel (7, 0); face-parsing masks hold ids 0..18, or 255 for unknown`);
  });
});
