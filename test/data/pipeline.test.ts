import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina, valueSymbol } from 'piscina';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { centerCrop } from '../../src/data/augment.js';
import type { DecodeTask } from '../../src/data/decode-task.js';
import { IMAGENET_MEAN, IMAGENET_STD, ImagePipeline, type BatchOptions } from '../../src/data/pipeline.js';
import type { Batch, Sample } from '../../src/data/types.js';
import { tempDir, writeGrey, writeMask, writeRgb } from './fixtures.js';

// Worker threads load compiled JavaScript: `npm test` builds dist/ first.
const dist = (file: string) => fileURLToPath(new URL(`../../dist/src/data/${file}`, import.meta.url));

const RESIZE = 20;
const S = 16;
const tmp = tempDir('pipeline');
const at = (name: string) => join(tmp.dir, name);

/**
 * 0: constant colour PNG (hand-checked normalisation); 1: corrupt JPEG; 2: left half red, right half
 * blue, its mask skin | hair; 3: missing file; 4: 30x24 JPEG gradient with a 60x48 mask (both
 * resized); 5: greyscale JPEG.
 */
const samples: Sample[] = [
  { id: 'flat', imagePath: at('flat.png'), maskPath: at('flat-mask.png'), expectedMaskPath: at('flat-mask.png'), label: 3 },
  { id: 'corrupt', imagePath: at('corrupt.jpg'), maskPath: at('flat-mask.png'), expectedMaskPath: at('flat-mask.png'), label: 1 },
  { id: 'halves', imagePath: at('halves.png'), maskPath: at('halves-mask.png'), expectedMaskPath: at('halves-mask.png'), label: 5 },
  { id: 'missing', imagePath: at('missing.jpg'), maskPath: at('flat-mask.png'), expectedMaskPath: at('flat-mask.png'), label: 2 },
  { id: 'gradient', imagePath: at('gradient.jpg'), maskPath: at('gradient-mask.png'), expectedMaskPath: at('gradient-mask.png'), label: 0 },
  { id: 'grey', imagePath: at('grey.jpg'), maskPath: at('flat-mask.png'), expectedMaskPath: at('flat-mask.png'), label: 6 },
];
const all = Int32Array.from(samples.keys());
const FLAT: [number, number, number] = [200, 100, 50];

const test: BatchOptions = { batchSize: 6, train: false, hflip: false, seed: 1, epoch: 0, dropLastBatch: false };
const train = (epoch: number): BatchOptions => ({ ...test, batchSize: 3, train: true, hflip: true, epoch });

beforeAll(async () => {
  await writeRgb(at('flat.png'), RESIZE, RESIZE, () => FLAT);
  await writeMask(at('flat-mask.png'), RESIZE, RESIZE, () => 1);
  await writeRgb(at('halves.png'), RESIZE, RESIZE, (x) => (x < RESIZE / 2 ? [255, 0, 0] : [0, 0, 255]));
  await writeMask(at('halves-mask.png'), RESIZE, RESIZE, (x) => (x < RESIZE / 2 ? 1 : 17));
  await writeRgb(at('gradient.jpg'), 30, 24, (x, y) => [x * 8, y * 10, 128]);
  await writeMask(at('gradient-mask.png'), 60, 48, (x, y) => (x + 3 * y) % 19);
  await writeGrey(at('grey.jpg'), RESIZE, RESIZE, () => 77);
  writeFileSync(at('corrupt.jpg'), Uint8Array.from({ length: 600 }, (_, i) => (i * 73 + 11) & 255));
});
afterAll(() => tmp.remove());

async function collect(pipeline: ImagePipeline, opts: BatchOptions, order = all): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of pipeline.batches(samples, order, opts)) out.push(b);
  return out;
}

describe('ImagePipeline with masks', () => {
  let pipeline: ImagePipeline;
  beforeAll(() => {
    pipeline = new ImagePipeline({ threads: 2, resize: RESIZE, inputSize: S, withMasks: true, topN: 2 });
  });
  afterAll(() => pipeline.close());

  it('decodes a batch with the documented shapes and types, leaving out and listing unusable files', async () => {
    const [batch, ...rest] = await collect(pipeline, test);
    expect(rest).toHaveLength(0);
    expect(batch.size).toBe(4);
    expect(batch.inputSize).toBe(S);
    expect(batch.ids).toEqual(['flat', 'halves', 'gradient', 'grey']);
    expect(batch.images).toBeInstanceOf(Float32Array);
    expect(batch.images.length).toBe(4 * S * S * 3);
    expect(batch.labels).toEqual(Int32Array.from([3, 5, 0, 6]));
    expect(batch.masks).toBeInstanceOf(Uint8Array);
    expect(batch.masks!.length).toBe(4 * S * S);
    expect(Math.max(...batch.masks!)).toBeLessThan(8);
    expect(batch.components).toBeInstanceOf(Float32Array);
    expect(batch.components!.length).toBe(4 * 8);
    expect(batch.waitMs).toBeGreaterThan(0);

    expect(batch.skipped).toHaveLength(2);
    expect(batch.skipped[0].path).toBe(at('corrupt.jpg'));
    expect(batch.skipped[0].reason).toMatch(/unsupported image format/);
    expect(batch.skipped[1]).toEqual({ path: at('missing.jpg'), reason: 'missing file' });
  });

  it('normalises with ImageNet statistics, NHWC, matching a hand computation', async () => {
    const [batch] = await collect(pipeline, test);
    // Sample 0 is one flat colour, so every pixel must read ((v/255 - mean)/std) per channel.
    const expected = FLAT.map((v, c) => Math.fround((v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]));
    expect(Array.from(batch.images.subarray(0, 3))).toEqual(expected);
    const last = (S * S - 1) * 3;
    expect(Array.from(batch.images.subarray(last, last + 3))).toEqual(expected);
    // Sample 3 is greyscale: three equal channels before normalisation.
    const grey = 3 * S * S * 3;
    expect(Array.from(batch.images.subarray(grey, grey + 3))).toEqual([0, 1, 2].map((c) => Math.fround((77 / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c])));
    // Flat mask of class 1 (skin) -> part 1 everywhere; top-2 of a single present part is just it.
    expect(Array.from(batch.masks!.subarray(0, S * S))).toEqual(Array(S * S).fill(1));
    expect(Array.from(batch.components!.subarray(0, 8))).toEqual([0, 1, 0, 0, 0, 0, 0, 0]);
    // The resized 60x48 mask keeps every part of the 19-class stripes: top-2 marks exactly 2.
    expect(batch.components!.subarray(16, 24).reduce((a, b) => a + b)).toBe(2);
  });

  it('crops and flips image and mask together (red half = skin, blue half = hair)', async () => {
    const flips = new Set<boolean>();
    for (let epoch = 0; epoch < 8; epoch++) {
      const [batch] = await collect(pipeline, train(epoch), Int32Array.from([2]));
      const img = batch.images;
      const mask = batch.masks!;
      for (let p = 0; p < S * S; p++) expect(mask[p]).toBe(img[p * 3] > 0 ? 1 : 7);
      // Column 0 shows the left (red) half unless the crop was mirrored.
      flips.add(mask[0] === 7);
    }
    expect(flips).toEqual(new Set([true, false]));
  });

  it('is deterministic in (seed, epoch): same keys give identical buffers, another epoch differs', async () => {
    const bytes = (bs: Batch[]) => bs.map((b) => [Buffer.from(b.images.buffer), Buffer.from(b.masks!.buffer), Buffer.from(b.components!.buffer)]);
    const a = await collect(pipeline, train(3));
    const b = await collect(pipeline, train(3));
    const c = await collect(pipeline, train(4));
    expect(a.map((x) => x.size)).toEqual([2, 2]);
    expect(bytes(a)).toEqual(bytes(b));
    expect(bytes(c)).not.toEqual(bytes(a));
  });

  it('uses the centre crop for evaluation', async () => {
    const [batch] = await collect(pipeline, { ...test, batchSize: 1 }, Int32Array.from([4]));
    const resized = await sharp(at('gradient.jpg')).resize(RESIZE, RESIZE, { fit: 'fill' }).raw().toBuffer();
    const m = (RESIZE - S) / 2;
    const expected = new Float32Array(S * S * 3);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        for (let c = 0; c < 3; c++) {
          expected[(y * S + x) * 3 + c] = (resized[((y + m) * RESIZE + x + m) * 3 + c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
      }
    }
    expect(batch.images).toEqual(expected);
  });

  it('cuts the order into batches, dropping a short last batch when asked', async () => {
    expect((await collect(pipeline, { ...test, batchSize: 4 })).map((b) => b.ids.length + b.skipped.length)).toEqual([4, 2]);
    expect((await collect(pipeline, { ...test, batchSize: 4, dropLastBatch: true })).map((b) => b.ids.length + b.skipped.length)).toEqual([4]);
  });
});

describe('ImagePipeline without masks', () => {
  it('returns no masks or components', async () => {
    const pipeline = new ImagePipeline({ resize: RESIZE, inputSize: S, withMasks: false, topN: 2 });
    try {
      const [batch] = await collect(pipeline, test);
      expect(batch.size).toBe(4);
      expect(batch.masks).toBeNull();
      expect(batch.components).toBeNull();
    } finally {
      await pipeline.close();
    }
  });
});

describe('early stop and shutdown', () => {
  it('lets the consumer stop early without unhandled rejections', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const pipeline = new ImagePipeline({ threads: 2, prefetch: 4, resize: RESIZE, inputSize: S, withMasks: true, topN: 2 });
    try {
      const many = Int32Array.from({ length: 60 }, (_, i) => i % samples.length);
      let seen = 0;
      for await (const b of pipeline.batches(samples, many, { ...test, batchSize: 2 })) {
        seen += b.ids.length + b.skipped.length;
        if (seen >= 4) break;
      }
      expect(seen).toBe(4);
      // A pool destroyed under a running iteration fails it once the batches decoded before run out;
      // the other tasks of the pool fail with it, and must not surface as unhandled rejections.
      const gen = pipeline.batches(samples, many, { ...test, batchSize: 2 });
      await gen.next();
      await pipeline.close();
      const drain = async () => {
        for (let r = await gen.next(); !r.done; r = await gen.next());
      };
      await expect(drain()).rejects.toThrow();
      await new Promise((r) => setTimeout(r, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await pipeline.close();
    }
  });

  it('leaves no handle open: a process that used and closed a pipeline exits', () => {
    const script = at('run-pipeline.mjs');
    writeFileSync(
      script,
      `import { ImagePipeline } from ${JSON.stringify(dist('pipeline.js'))};
const samples = ${JSON.stringify(samples)};
const p = new ImagePipeline({ resize: ${RESIZE}, inputSize: ${S}, withMasks: true, topN: 2 });
let n = 0;
for await (const b of p.batches(samples, Int32Array.from([0, 2, 4, 5, 0, 2]), ${JSON.stringify({ ...test, batchSize: 2 })})) n += b.size;
await p.close();
console.log('decoded', n);
`,
    );
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('decoded 6');
    expect(r.status).toBe(0);
  });
});

describe('buffer transfer', () => {
  // A worker that runs the real decode task, keeps its own references to the arrays it returned,
  // and reports their byteLength on the next call: 0 means the buffers left the worker (moved).
  const workerFile = () => at('probe-worker.mjs');
  beforeAll(() => {
    writeFileSync(
      workerFile(),
      `import decode from ${JSON.stringify(dist('decode-task.js'))};
const valueSymbol = Symbol.for('Piscina.valueOf'); // piscina's valueSymbol, registered globally
let kept = [];
const remember = (b) => { kept = [b.images, b.labels, b.masks, b.components]; };
export default async function (task) { const r = await decode(task); remember(r[valueSymbol]); return r; }
export async function copied(task) { const b = (await decode(task))[valueSymbol]; remember(b); return b; }
export function probe() { return kept.map((a) => a.byteLength); }
`,
    );
  });

  async function probe(name: 'default' | 'copied'): Promise<{ main: Batch; worker: number[] }> {
    const pool = new Piscina({ filename: workerFile(), minThreads: 1, maxThreads: 1 });
    try {
      const task: DecodeTask = {
        items: samples.slice(0, 3).map((s) => ({ ...s, crop: centerCrop(RESIZE, S) })),
        resize: RESIZE,
        inputSize: S,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        withMasks: true,
        topN: 2,
      };
      const main: Batch = await pool.run(task, { name });
      const worker: number[] = await pool.run(null, { name: 'probe' });
      return { main, worker };
    } finally {
      await pool.destroy();
    }
  }

  it('moves images, labels, masks and components out of the worker instead of copying them', async () => {
    const moved = await probe('default');
    expect(moved.main.size).toBe(2);
    expect(moved.main.images).toBeInstanceOf(Float32Array);
    expect(moved.main.images.byteLength).toBe(2 * S * S * 3 * 4);
    expect(moved.main.masks!.byteLength).toBe(2 * S * S);
    expect(moved.worker).toEqual([0, 0, 0, 0]);
    // The probe can tell: a plain returned batch is cloned and the worker keeps its buffers.
    const copied = await probe('copied');
    expect(copied.worker).toEqual([2 * S * S * 3 * 4, 2 * 4, 2 * S * S, 2 * 8 * 4]);
    expect(valueSymbol).toBe(Symbol.for('Piscina.valueOf'));
  });
});
