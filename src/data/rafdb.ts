/**
 * RAF-DB (basic) reader. Layout under the root:
 *   EmoLabel/list_patition_label.txt   (sic) lines "train_00001.jpg 5" / "test_0001.jpg 4"
 *   Image/aligned/<stem>_aligned.jpg   the aligned 100x100 faces
 *   Mask/aligned/<stem>_aligned.png    face-parsing masks (ours, not part of RAF-DB; optional)
 * The split is the name's prefix; labels 1..7 (Surprise, Fear, Disgust, Happiness, Sadness, Anger,
 * Neutral) become 0..6 in EXPRESSIONS order.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errors } from '../errors.js';
import { NUM_EXPRESSIONS } from './labels.js';
import { fileNames } from './dir.js';
import type { DatasetSplits, Sample } from './types.js';

const LAYOUT = 'RAF-DB basic (EmoLabel/list_patition_label.txt and Image/aligned/)';

export function readRafDb(root: string): DatasetSplits {
  const labelFile = join(root, 'EmoLabel', 'list_patition_label.txt');
  const imageDir = join(root, 'Image', 'aligned');
  const maskDir = join(root, 'Mask', 'aligned');
  for (const path of [root, labelFile, imageDir]) {
    if (!existsSync(path)) throw errors.datasetNotFound(path, LAYOUT);
  }
  // One readdir instead of 15k stats. Images are not checked here: a missing one is skipped (and
  // listed) by the pipeline, like an unreadable one.
  const masks = fileNames(maskDir);

  const splits: DatasetSplits = { name: 'rafdb', root, train: [], test: [] };
  const firstLine = new Map<string, number>();
  readFileSync(labelFile, 'utf8')
    .replace(/^\uFEFF/, '') // a byte-order mark, as Windows editors write one
    .split(/\r?\n/)
    .forEach((text, i) => {
      const line = i + 1;
      const fields = text.trim().split(/\s+/);
      if (fields[0] === '') return;
      const bad = (problem: string) => errors.labelInvalid(labelFile, line, text, problem);
      if (fields.length !== 2) throw bad(`expected 2 fields (name label), found ${fields.length}`);
      const [name, labelText] = fields;
      if (!name.endsWith('.jpg')) throw bad('image name must end in .jpg');
      const split = name.startsWith('train_') ? splits.train : name.startsWith('test_') ? splits.test : null;
      if (split === null) throw bad('image name must start with train_ or test_');
      const label = /^\d+$/.test(labelText) ? Number(labelText) : NaN;
      if (!(label >= 1 && label <= NUM_EXPRESSIONS)) throw bad(`label must be an integer 1..${NUM_EXPRESSIONS}`);
      const seen = firstLine.get(name);
      if (seen !== undefined) throw bad(`duplicate image name (first listed on line ${seen})`);
      firstLine.set(name, line);

      const stem = name.slice(0, -'.jpg'.length);
      const maskName = `${stem}_aligned.png`;
      const expectedMaskPath = join(maskDir, maskName);
      const sample: Sample = {
        id: stem,
        imagePath: join(imageDir, `${stem}_aligned.jpg`),
        maskPath: masks.has(maskName) ? expectedMaskPath : null,
        expectedMaskPath,
        label: label - 1,
      };
      split.push(sample);
    });
  return splits;
}
