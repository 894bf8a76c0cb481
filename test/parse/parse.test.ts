import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMaskClasses } from '../../src/data/mask-file.js';
import { readRafDb } from '../../src/data/rafdb.js';
import { readSfew } from '../../src/data/sfew.js';
import { releaseEngine } from '../../src/engine/backend.js';
import type { SlferError } from '../../src/errors.js';
import { readStateDict } from '../../src/torch/state-dict.js';
import { writeStateDict } from '../../src/torch/write-torch-file.js';
import { createBiSeNetMaker } from '../../src/parse/bisenet-maker.js';
import { sha256File } from '../../src/util/sha256-file.js';
import { loadLandmarksMaker, parse, type ParseOptions } from '../../src/parse/parse.js';
import { BISENET_LEGACY, BISENET_ZIP } from './bisenet-fixture.js';
import { rafdbWithoutMasks, sfewFrom } from './parse-datasets.js';

// parse over real files: synthetic faces (JPEGs) in RAF-DB's and SFEW's layouts, the fixture's
// full-size BiSeNet weights as written by torch.save. At 64px input to keep it quick (the CLI test
// runs the default 512).
let data: Awaited<ReturnType<typeof rafdbWithoutMasks>>;
let scratch: string;
const SIZE = 64;
const opts = (over: Partial<ParseOptions> = {}): ParseOptions => ({ data: data.root, weights: BISENET_ZIP, inputSize: SIZE, backend: 'wasm', ...over });

beforeAll(async () => {
  data = await rafdbWithoutMasks(4, 2, 40);
  scratch = mkdtempSync(join(tmpdir(), 'slfer-parse-'));
});
afterAll(async () => {
  data.cleanup();
  rmSync(scratch, { recursive: true, force: true });
  await releaseEngine();
});

const errorOf = async (p: Promise<unknown>): Promise<SlferError> => {
  try {
    await p;
  } catch (e) {
    return e as SlferError;
  }
  throw new Error('expected an error');
};

describe('slfer-dist parse (RAF-DB layout)', () => {
  it('writes, for every image of both splits, the mask the mask reader reads back at the image size with the maker\'s class ids', async () => {
    const r = await parse(opts({ dataset: 'rafdb' }));
    const splits = readRafDb(data.root);
    const samples = [...splits.train, ...splits.test];
    expect(r).toMatchObject({ dataset: 'rafdb', method: 'bisenet', images: 6, written: 6, kept: 0, skipped: [], interrupted: false });
    // The dataset reader now finds every mask.
    expect(samples.every((s) => s.maskPath === s.expectedMaskPath)).toBe(true);

    const maker = await createBiSeNetMaker({ weights: BISENET_ZIP, inputSize: SIZE, backend: 'wasm' });
    try {
      for (const s of samples) {
        const { data: rgb, info } = await sharp(s.imagePath).removeAlpha().raw().toBuffer({ resolveWithObject: true });
        const mask = await readMaskClasses(s.expectedMaskPath, info);
        expect([mask.width, mask.height]).toEqual([40, 40]);
        const expected = await maker.label(new Uint8Array(rgb), info.width, info.height);
        expect(Buffer.from(mask.classes).equals(Buffer.from(expected!)), s.id).toBe(true);
      }
    } finally {
      maker.dispose();
    }
    // An 8-bit single-channel PNG.
    const meta = await sharp(samples[0].expectedMaskPath).metadata();
    expect([meta.format, meta.channels, meta.depth]).toEqual(['png', 1, 'uchar']);
  });

  it('records how the masks were made in Mask/aligned/parse.json', async () => {
    const j = JSON.parse(readFileSync(join(data.root, 'Mask', 'aligned', 'parse.json'), 'utf8'));
    expect(j.method).toBe('bisenet');
    expect(j.description).toMatchObject({ weights: BISENET_ZIP, weightsSha256: await sha256File(BISENET_ZIP), inputSize: SIZE, engine: 'wasm' });
    expect(j.counts).toEqual({ images: 6, written: 6, kept: 0, skipped: 0 });
    expect(j.skipped).toEqual([]);
    expect(j.complete).toBe(true);
    expect(j.dataset).toBe('rafdb');
    expect(Date.parse(j.startedAt)).toBeLessThanOrEqual(Date.parse(j.finishedAt));
    expect(j.seconds).toBeGreaterThan(0);
  });

  it('resumes: masks already there are kept untouched, missing ones are made', async () => {
    const splits = readRafDb(data.root);
    const paths = [...splits.train, ...splits.test].map((s) => s.expectedMaskPath);
    const before = paths.map((p) => statSync(p));
    const parseJson = readFileSync(join(data.root, 'Mask', 'aligned', 'parse.json'), 'utf8');

    const again = await parse(opts());
    expect(again).toMatchObject({ written: 0, kept: 6, skipped: [] });
    paths.forEach((p, i) => {
      expect(statSync(p).mtimeMs, p).toBe(before[i].mtimeMs);
      expect(statSync(p).ino, p).toBe(before[i].ino);
    });
    // Nothing made, so parse.json still describes the run that made them.
    expect(readFileSync(join(data.root, 'Mask', 'aligned', 'parse.json'), 'utf8')).toBe(parseJson);

    rmSync(paths[2]);
    const third = await parse(opts());
    expect(third).toMatchObject({ written: 1, kept: 5 });
    expect(existsSync(paths[2])).toBe(true);
    paths.forEach((p, i) => i !== 2 && expect(statSync(p).ino, p).toBe(before[i].ino));
    const j = JSON.parse(readFileSync(join(data.root, 'Mask', 'aligned', 'parse.json'), 'utf8'));
    expect(j.counts).toEqual({ images: 6, written: 1, kept: 5, skipped: 0 });
    expect(j.keptFrom.method).toBe('bisenet');

    // Resuming with other weights says that the kept masks came from different ones.
    rmSync(paths[3]);
    const lines: string[] = [];
    await parse(opts({ weights: BISENET_LEGACY, events: { log: (l) => lines.push(l) } }));
    expect(lines.join('\n')).toMatch(/warning: the 5 masks kept were made with other weights/);
  });

  it('remakes every mask with --overwrite (legacy-format weights, same masks)', async () => {
    const splits = readRafDb(data.root);
    const paths = [...splits.train, ...splits.test].map((s) => s.expectedMaskPath);
    const before = paths.map((p) => ({ ino: statSync(p).ino, bytes: readFileSync(p) }));
    const r = await parse(opts({ overwrite: true, weights: BISENET_LEGACY }));
    expect(r).toMatchObject({ written: 6, kept: 0 });
    paths.forEach((p, i) => {
      expect(statSync(p).ino, p).not.toBe(before[i].ino); // a new file, renamed over the old one
      expect(readFileSync(p).equals(before[i].bytes), p).toBe(true); // the same weights in the other format
    });
  });

  it('skips a truncated image and an image that is missing, lists them, and makes the rest', async () => {
    const splits = readRafDb(data.root);
    const [a, b] = splits.train;
    const saved = readFileSync(a.imagePath);
    truncateSync(a.imagePath, Math.floor(saved.length / 3));
    const savedB = readFileSync(b.imagePath);
    rmSync(b.imagePath);
    try {
      const r = await parse(opts({ overwrite: true }));
      expect(r.written).toBe(4);
      expect(r.skipped.map((s) => s.path).sort()).toEqual([a.imagePath, b.imagePath].sort());
      expect(r.skipped.find((s) => s.path === b.imagePath)?.reason).toBe('missing file');
      expect(r.skipped.find((s) => s.path === a.imagePath)?.reason).toMatch(/\S/);
      const j = JSON.parse(readFileSync(join(data.root, 'Mask', 'aligned', 'parse.json'), 'utf8'));
      expect(j.counts.skipped).toBe(2);
      expect(j.skipped.map((s: { path: string }) => s.path).sort()).toEqual([a.imagePath, b.imagePath].sort());
    } finally {
      writeFileSync(a.imagePath, saved);
      writeFileSync(b.imagePath, savedB);
    }
  });

  it('stops between images when its signal is aborted, leaving whole masks and parse.json saying so', async () => {
    const controller = new AbortController();
    const r = await parse(
      opts({
        overwrite: true,
        signal: controller.signal,
        events: { image: ({ done }) => done === 2 && controller.abort() },
      }),
    );
    expect(r).toMatchObject({ interrupted: true, written: 2 });
    const j = JSON.parse(readFileSync(join(data.root, 'Mask', 'aligned', 'parse.json'), 'utf8'));
    expect(j.complete).toBe(false);
    expect(j.counts.written).toBe(2);
  });
});

describe('slfer-dist parse (SFEW layout)', () => {
  it('writes each mask into <Split>_Aligned_Faces_Masks/<Class>/ and parse.json into the root', async () => {
    const root = join(scratch, 'sfew');
    sfewFrom(data.root, root);
    const r = await parse(opts({ data: root }));
    expect(r).toMatchObject({ dataset: 'sfew', written: 6, kept: 0 });
    const splits = readSfew(root);
    expect(splits.train).toHaveLength(4);
    expect(splits.test).toHaveLength(2);
    for (const s of [...splits.train, ...splits.test]) {
      expect(s.maskPath).toBe(s.expectedMaskPath);
      expect(s.maskPath).toMatch(/(Train|Val)_Aligned_Faces_Masks\/(Happy|Sad)\/[^/]+\.png$/);
      const mask = await readMaskClasses(s.maskPath!, { width: 40, height: 40 });
      expect(mask.classes.length).toBe(40 * 40);
    }
    expect(JSON.parse(readFileSync(join(root, 'parse.json'), 'utf8')).dataset).toBe('sfew');
  });
});

describe('slfer-dist parse: bad weights and options', () => {
  it('refuses a truncated weights file with an error naming the file', async () => {
    const bad = join(scratch, 'truncated.pth');
    writeFileSync(bad, readFileSync(BISENET_ZIP).subarray(0, 50_000));
    const e = await errorOf(parse(opts({ weights: bad, overwrite: true })));
    expect(e.code).toMatch(/^SLFER_/);
    expect(e.message).toContain(bad);
  });

  it('refuses weights of another network, naming the file, each missing and unused key, and both shapes', async () => {
    const sd = await readStateDict(BISENET_ZIP);
    sd.delete('ffm.conv1.weight');
    sd.set('fc.weight', { dtype: 'float32', shape: [2, 2], data: new Float32Array(4) });
    sd.set('conv_out.conv_out.weight', { dtype: 'float32', shape: [11, 256, 1, 1], data: new Float32Array(11 * 256) });
    const bad = join(scratch, 'wrong-keys.pth');
    writeStateDict(bad, sd);
    const e = await errorOf(parse(opts({ weights: bad, overwrite: true })));
    expect(e.code).toBe('SLFER_WEIGHTS_MISMATCH');
    expect(e.message).toContain(bad);
    expect(e.message).toContain('missing: ffm.conv1.weight [64, 256, 1, 1]');
    expect(e.message).toContain('unused: fc.weight [2, 2]');
    expect(e.message).toContain('conv_out.conv_out.weight is [19, 256, 1, 1] in the model, [11, 256, 1, 1] in the file');
    expect(e.hint).toContain('79999_iter.pth');
  });

  it('refuses weights holding NaN', async () => {
    const sd = await readStateDict(BISENET_ZIP);
    const t = sd.get('cp.resnet.bn1.running_var')!;
    const values = new Float32Array(t.data as Float32Array);
    values[3] = NaN;
    sd.set('cp.resnet.bn1.running_var', { ...t, data: values });
    const bad = join(scratch, 'nan.pth');
    writeStateDict(bad, sd);
    const e = await errorOf(parse(opts({ weights: bad, overwrite: true })));
    expect(e.code).toBe('SLFER_WEIGHTS_INVALID');
    expect(e.message).toContain('cp.resnet.bn1.running_var');
  });

  it('names a weights file that is not there, and asks for weights when none are given', async () => {
    const missing = join(scratch, 'nope.pth');
    const e = await errorOf(parse(opts({ weights: missing, overwrite: true })));
    expect(e.code).toBe('SLFER_WEIGHTS_NOT_FOUND');
    expect(e.message).toContain(missing);
    const none = await errorOf(parse(opts({ weights: undefined, overwrite: true })));
    expect(none.code).toBe('SLFER_INVALID_ARGUMENT');
    expect(none.hint).toContain('--weights');
  });

  it('explains a dataset folder it cannot write into, instead of crashing', async () => {
    const root = join(scratch, 'read-only');
    sfewFrom(data.root, root);
    writeFileSync(join(root, 'Train_Aligned_Faces_Masks'), 'a file where the mask folder should be');
    const e = await errorOf(parse(opts({ data: root })));
    expect(e.code).toBe('SLFER_INVALID_ARGUMENT');
    expect(e.message).toContain(`cannot write ${join(root, 'Train_Aligned_Faces_Masks')}`);
    expect(e.hint).toContain('writable');
  });

  it('needs no weights when every mask is already there (nothing to make)', async () => {
    const r = await parse(opts({ weights: undefined }));
    expect(r).toMatchObject({ written: 0, kept: 6, skipped: [] });
  });

  it('refuses an input size that is not a multiple of 32', async () => {
    const e = await errorOf(parse(opts({ inputSize: 100 })));
    expect(e.code).toBe('SLFER_INVALID_ARGUMENT');
    expect(e.message).toContain('--input-size');
  });

  it('says when a folder is neither RAF-DB nor SFEW', async () => {
    const e = await errorOf(parse(opts({ data: scratch })));
    expect(e.code).toBe('SLFER_DATASET_NOT_FOUND');
  });

  it('gives a typed error for --method landmarks when that method\'s module is not in the build', async () => {
    const e = await errorOf(loadLandmarksMaker(1, './no-such-landmarks-maker.js'));
    expect(e.code).toBe('SLFER_PARSE_METHOD_UNAVAILABLE');
    expect(e.message).toContain('no-such-landmarks-maker');
    expect(e.hint).toContain('--method bisenet');
  });
});
