/**
 * SFEW 2.0 reader. Layout under the root:
 *   Train_Aligned_Faces/<Class>/<stem>.{png,jpg,jpeg}        training split
 *   Val_Aligned_Faces/<Class>/<stem>.{png,jpg,jpeg}          test split (SFEW's test labels are not public)
 *   <Split>_Aligned_Faces_Masks/<Class>/<stem>.png           face-parsing masks (ours; optional)
 * <Class> is one of the SFEW_FOLDERS names (Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise),
 * mapped onto RAF-DB's expression order. Samples are ordered by expression index, then file name,
 * so the order (and hence every seeded shuffle) is the same on every machine.
 */
import { existsSync, readdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import { errors } from '../errors.js';
import { SFEW_FOLDERS } from './labels.js';
import { byCodeUnit, fileNames } from './dir.js';
import type { DatasetSplits, Sample } from './types.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);
const LAYOUT = 'SFEW 2.0 (Train_Aligned_Faces/ and Val_Aligned_Faces/ with one folder per expression)';

export function readSfew(root: string): DatasetSplits {
  if (!existsSync(root)) throw errors.datasetNotFound(root, LAYOUT);
  return { name: 'sfew', root, train: readSplit(root, 'Train'), test: readSplit(root, 'Val') };
}

function readSplit(root: string, split: 'Train' | 'Val'): Sample[] {
  const dir = join(root, `${split}_Aligned_Faces`);
  const maskRoot = join(root, `${split}_Aligned_Faces_Masks`);
  if (!existsSync(dir)) throw errors.datasetNotFound(dir, LAYOUT);

  const classes = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  for (const name of classes) {
    if (!Object.hasOwn(SFEW_FOLDERS, name)) {
      throw errors.invalidArgument(
        `SFEW class folder ${join(dir, name)}`,
        `"${name}" is not an SFEW expression`,
        `class folders must be named ${Object.keys(SFEW_FOLDERS).sort().join(', ')}; rename or remove that folder`,
      );
    }
  }
  classes.sort((a, b) => SFEW_FOLDERS[a] - SFEW_FOLDERS[b]);

  const samples: Sample[] = [];
  for (const cls of classes) {
    const masks = fileNames(join(maskRoot, cls));
    const images = [...fileNames(join(dir, cls))].filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase())).sort(byCodeUnit);
    const ids = new Set<string>();
    for (const file of images) {
      const stem = file.slice(0, -extname(file).length);
      const id = `${cls}/${stem}`;
      // Ids and mask paths are keyed by stem, so a.png next to a.jpg would share both.
      if (ids.has(id)) {
        throw errors.invalidArgument(
          `SFEW image ${join(dir, cls, file)}`,
          `another image in the folder has the same name stem "${stem}"`,
          'keep one image per name stem (masks are matched by stem)',
        );
      }
      ids.add(id);
      const expectedMaskPath = join(maskRoot, cls, `${stem}.png`);
      samples.push({
        id,
        imagePath: join(dir, cls, file),
        maskPath: masks.has(`${stem}.png`) ? expectedMaskPath : null,
        expectedMaskPath,
        label: SFEW_FOLDERS[cls],
      });
    }
  }
  return samples;
}
