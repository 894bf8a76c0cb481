import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMaskClasses } from '../../src/data/mask-file.js';
import { readRafDb } from '../../src/data/rafdb.js';
import { PARSING_TO_PART } from '../../src/data/labels.js';
import { CLASS_COLOURS, PART_COLOURS } from '../../src/data/label-colours.js';
import { writePreview } from '../../src/parse/preview.js';
import { syntheticDataset } from '../helpers/synthetic.js';

// The synthetic set comes with 19-class masks, so the preview has real labels to draw.
let data: Awaited<ReturnType<typeof syntheticDataset>>;
beforeAll(async () => {
  data = await syntheticDataset({ train: 6, test: 3, size: 100 });
});
afterAll(() => data.cleanup());

const FACE_PARSING_SKIN: [number, number, number] = [255, 85, 0]; // part_colors[1] in face-parsing.PyTorch's test.py

describe('parse --preview', () => {
  it('draws one row per image: the image, the 19-class mask in face-parsing\'s colours, the 8 parts and the CT legend', async () => {
    const splits = readRafDb(data.root);
    const samples = [...splits.train, ...splits.test];
    const file = join(data.base, 'preview.png');
    expect(await writePreview({ samples, file, count: 4 })).toBe(4);
    const { data: px, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    // 4 columns of 128px cells (3 with 4px gaps, then the legend) and a 16px header; 4 rows of 128 + 4.
    expect([info.width, info.height, info.channels]).toEqual([3 * 132 + 124, 16 + 4 * 132, 3]);

    // The first row is the first sample: its mask centre pixel, coloured in the 19-class column.
    const mask = await readMaskClasses(samples[0].maskPath!, { width: 100, height: 100 });
    const at = (x: number, y: number) => [...px.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
    const centreClass = mask.classes[50 * 100 + 50];
    // 100px scaled to 128 by nearest neighbour: the cells' pixel (64, 64) is the mask's (50, 50).
    expect(at(132 + 64, 16 + 64)).toEqual(CLASS_COLOURS[centreClass]);
    expect(at(2 * 132 + 64, 16 + 64)).toEqual(PART_COLOURS[PARSING_TO_PART[centreClass]]);
    expect(CLASS_COLOURS[1]).toEqual(FACE_PARSING_SKIN);
    expect(centreClass).not.toBe(0); // the face's centre, so the check is not just the white background
    // The legend has a black-framed swatch for the first CT part.
    expect(at(3 * 132, 16 + 4)).toEqual([0, 0, 0]);
  });

  it('takes the next image when one mask cannot be read, and writes nothing when none can', async () => {
    const splits = readRafDb(data.root);
    const samples = [...splits.train, ...splits.test];
    writeFileSync(samples[0].maskPath!, 'not a png');
    const file = join(data.base, 'preview-2.png');
    expect(await writePreview({ samples, file, count: 9 })).toBe(8);
    expect((await sharp(file).metadata()).height).toBe(16 + 8 * 132);
    expect(await writePreview({ samples: [samples[0]], file: join(data.base, 'none.png'), count: 3 })).toBe(0);
  });
});
