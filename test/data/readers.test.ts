import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyMaskPolicy } from '../../src/data/mask-policy.js';
import { readRafDb } from '../../src/data/rafdb.js';
import { readSfew } from '../../src/data/sfew.js';
import type { DatasetSplits } from '../../src/data/types.js';
import { SlferError } from '../../src/errors.js';
import { tempDir, writeMask, writeRgb } from './fixtures.js';

const tmp = tempDir('readers');
afterAll(() => tmp.remove());

const face = (): [number, number, number] => [120, 90, 60];
const skinMask = () => 1;

/** The error `fn` throws, which must be a SlferError. */
function thrown(fn: () => unknown): SlferError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SlferError);
    return e as SlferError;
  }
  throw new Error('expected an error');
}

async function makeRafDb(root: string, labels: string, masked: string[]): Promise<void> {
  mkdirSync(join(root, 'EmoLabel'), { recursive: true });
  writeFileSync(join(root, 'EmoLabel', 'list_patition_label.txt'), labels);
  for (const line of labels.split('\n')) {
    const name = line.trim().split(/\s+/)[0];
    if (name) await writeRgb(join(root, 'Image', 'aligned', name.replace('.jpg', '_aligned.jpg')), 8, 8, face);
  }
  for (const stem of masked) await writeMask(join(root, 'Mask', 'aligned', `${stem}_aligned.png`), 8, 8, skinMask);
}

describe('readRafDb', () => {
  const root = join(tmp.dir, 'rafdb');
  let splits: DatasetSplits;
  beforeAll(async () => {
    await makeRafDb(root, 'train_00001.jpg 5\ntest_0001.jpg 4\n\ntrain_00002.jpg 1\r\ntrain_00003.jpg 7\n', ['train_00001', 'test_0001']);
    splits = readRafDb(root);
  });

  it('splits by prefix and shifts labels to 0..6', () => {
    expect(splits.name).toBe('rafdb');
    expect(splits.train.map((s) => [s.id, s.label])).toEqual([
      ['train_00001', 4],
      ['train_00002', 0],
      ['train_00003', 6],
    ]);
    expect(splits.test.map((s) => [s.id, s.label])).toEqual([['test_0001', 3]]);
    expect(splits.train[0].imagePath).toBe(join(root, 'Image', 'aligned', 'train_00001_aligned.jpg'));
  });

  it('finds masks by the path rule, and names the expected path when there is none', () => {
    const expected = join(root, 'Mask', 'aligned', 'train_00002_aligned.png');
    expect(splits.train[0].maskPath).toBe(join(root, 'Mask', 'aligned', 'train_00001_aligned.png'));
    expect(splits.test[0].maskPath).toBe(join(root, 'Mask', 'aligned', 'test_0001_aligned.png'));
    expect(splits.train[1].maskPath).toBeNull();
    expect(splits.train[1].expectedMaskPath).toBe(expected);
  });

  it.each([
    ['train_00003.jpg 9', 2, /label must be an integer 1\.\.7/],
    ['train_00003.jpg 5 extra', 2, /expected 2 fields/],
    ['train_00003.png 5', 2, /\.jpg/],
    ['val_00003.jpg 5', 2, /train_ or test_/],
    ['train_00001.jpg 2', 2, /duplicate.*line 1/],
    ['train_00003.jpg 0', 2, /1\.\.7/],
  ])('rejects "%s" naming the file and line', async (bad, line, problem) => {
    const dir = join(tmp.dir, `rafdb-bad-${bad.replace(/\W/g, '_')}`);
    await makeRafDb(dir, `train_00001.jpg 5\n${bad}\ntest_0001.jpg 1\n`, []);
    const err = thrown(() => readRafDb(dir));
    expect(err.code).toBe('SLFER_LABEL_INVALID');
    expect(err.message).toContain(`list_patition_label.txt:${line}:`);
    expect(err.message).toMatch(problem);
    expect(err.message).toContain(bad);
  });

  it('reports a missing root or label file by path', () => {
    const missing = join(tmp.dir, 'nowhere');
    let err = thrown(() => readRafDb(missing));
    expect(err.code).toBe('SLFER_DATASET_NOT_FOUND');
    expect(err.message).toContain(missing);
    const empty = join(tmp.dir, 'rafdb-empty');
    mkdirSync(empty);
    err = thrown(() => readRafDb(empty));
    expect(err.code).toBe('SLFER_DATASET_NOT_FOUND');
    expect(err.message).toContain(join(empty, 'EmoLabel', 'list_patition_label.txt'));
  });
});

describe('readSfew', () => {
  const root = join(tmp.dir, 'sfew');
  let splits: DatasetSplits;
  beforeAll(async () => {
    const files: [string, string][] = [
      ['Train', 'Surprise/b.png'],
      ['Train', 'Angry/z.jpg'],
      ['Train', 'Angry/a.jpeg'],
      ['Train', 'Happy/m.png'],
      ['Train', 'Neutral/c.png'],
      ['Train', 'Disgust/d.png'],
      ['Train', 'Sad/e.png'],
      ['Train', 'Fear/f.png'],
      ['Val', 'Happy/m.png'],
      ['Val', 'Sad/q.jpg'],
    ];
    for (const [split, file] of files) await writeRgb(join(root, `${split}_Aligned_Faces`, file), 8, 8, face);
    writeFileSync(join(root, 'Train_Aligned_Faces', 'Angry', 'Thumbs.db'), 'not an image');
    await writeMask(join(root, 'Train_Aligned_Faces_Masks', 'Angry', 'z.png'), 8, 8, skinMask);
    await writeMask(join(root, 'Val_Aligned_Faces_Masks', 'Happy', 'm.png'), 8, 8, skinMask);
    splits = readSfew(root);
  });

  it('reads Train as train and Val as test, ordered by expression then file name', () => {
    expect(splits.name).toBe('sfew');
    expect(splits.train.map((s) => [s.id, s.label])).toEqual([
      ['Surprise/b', 0],
      ['Fear/f', 1],
      ['Disgust/d', 2],
      ['Happy/m', 3],
      ['Sad/e', 4],
      ['Angry/a', 5],
      ['Angry/z', 5],
      ['Neutral/c', 6],
    ]);
    expect(splits.test.map((s) => [s.id, s.label])).toEqual([
      ['Happy/m', 3],
      ['Sad/q', 4],
    ]);
    expect(splits.train[6].imagePath).toBe(join(root, 'Train_Aligned_Faces', 'Angry', 'z.jpg'));
  });

  it('finds masks under <Split>_Aligned_Faces_Masks/<Class>/<stem>.png', () => {
    expect(splits.train[6].maskPath).toBe(join(root, 'Train_Aligned_Faces_Masks', 'Angry', 'z.png'));
    expect(splits.train[5].maskPath).toBeNull();
    expect(splits.train[5].expectedMaskPath).toBe(join(root, 'Train_Aligned_Faces_Masks', 'Angry', 'a.png'));
    expect(splits.test[0].maskPath).toBe(join(root, 'Val_Aligned_Faces_Masks', 'Happy', 'm.png'));
  });

  it('rejects an unknown class folder, listing the valid names', async () => {
    const dir = join(tmp.dir, 'sfew-bad');
    await writeRgb(join(dir, 'Train_Aligned_Faces', 'Happy', 'a.png'), 8, 8, face);
    await writeRgb(join(dir, 'Train_Aligned_Faces', 'Contempt', 'b.png'), 8, 8, face);
    mkdirSync(join(dir, 'Val_Aligned_Faces'));
    const err = thrown(() => readSfew(dir));
    expect(err.message).toContain('Contempt');
    expect(err.message).toContain(join(dir, 'Train_Aligned_Faces', 'Contempt'));
    expect(err.hint).toContain('Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise');
  });

  it('reports a missing root or split folder by path', () => {
    const missing = join(tmp.dir, 'no-sfew');
    let err = thrown(() => readSfew(missing));
    expect(err.code).toBe('SLFER_DATASET_NOT_FOUND');
    expect(err.message).toContain(missing);
    const half = join(tmp.dir, 'sfew-half');
    mkdirSync(join(half, 'Train_Aligned_Faces'), { recursive: true });
    err = thrown(() => readSfew(half));
    expect(err.message).toContain(join(half, 'Val_Aligned_Faces'));
  });
});

describe('applyMaskPolicy', () => {
  let splits: DatasetSplits;
  beforeAll(() => {
    splits = readSfew(join(tmp.dir, 'sfew'));
  });

  it('keeps everything when masks are not required', () => {
    const out = applyMaskPolicy(splits, { required: false, skipMissing: false });
    expect(out.splits.train).toHaveLength(8);
    expect(out.skipped).toEqual([]);
  });

  it('fails on the first sample without a mask, naming the expected mask path', () => {
    const err = thrown(() => applyMaskPolicy(splits, { required: true, skipMissing: false }));
    expect(err.code).toBe('SLFER_MASK_MISSING');
    expect(err.message).toContain(join(tmp.dir, 'sfew', 'Train_Aligned_Faces_Masks', 'Surprise', 'b.png'));
    expect(err.message).toContain(join(tmp.dir, 'sfew', 'Train_Aligned_Faces', 'Surprise', 'b.png'));
  });

  it('with skipMissing, drops and lists the samples without a mask', () => {
    const out = applyMaskPolicy(splits, { required: true, skipMissing: true });
    expect(out.splits.train.map((s) => s.id)).toEqual(['Angry/z']);
    expect(out.splits.test.map((s) => s.id)).toEqual(['Happy/m']);
    expect(out.skipped).toHaveLength(8);
    expect(out.skipped[0]).toEqual({ path: join(tmp.dir, 'sfew', 'Train_Aligned_Faces', 'Surprise', 'b.png'), reason: 'no mask' });
    expect(splits.train).toHaveLength(8); // the input is left as it was
  });
});
