/**
 * `parse --preview FILE.png`: a few images with their labels, as the paper's Fig. 5 shows them. One
 * row per image: the image, its mask coloured by the 19 face-parsing classes, the 8-part aggregate
 * that SLFER's ST learns, and the top-n parts that CT's target marks present (with their share of
 * the image). A look at the labels before a 40-epoch run trains on them.
 */
import sharp from 'sharp';
import { readMaskClasses } from '../data/mask-file.js';
import { aggregateParts, topNComponents } from '../data/masks.js';
import { classColour, PART_COLOURS, partColour } from '../data/label-colours.js';
import { NUM_PARTS, PART_CLASSES } from '../data/labels.js';
import type { Sample } from '../data/types.js';
import { writeFileAtomic } from '../util/atomic.js';
import { GLYPH_H } from '../util/bitmap-font.js';
import { BLACK, Canvas } from '../util/canvas.js';

const CELL = 128;
const GAP = 4;
const HEADER = 16;
const LEGEND = 124;

/** Fits width×height into a CELL square, keeping the aspect ratio. */
function fit(width: number, height: number): { w: number; h: number } {
  const s = CELL / Math.max(width, height);
  return { w: Math.max(1, Math.round(width * s)), h: Math.max(1, Math.round(height * s)) };
}

/** Nearest neighbour, pixel centres: ids stay ids. */
function nearest(ids: Uint8Array, width: number, height: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(height - 1, Math.floor(((y + 0.5) * height) / h));
    for (let x = 0; x < w; x++) out[y * w + x] = ids[sy * width + Math.min(width - 1, Math.floor(((x + 0.5) * width) / w))];
  }
  return out;
}

/** One row's pictures, or null when its image or mask cannot be read (the next sample is taken instead). */
async function rowOf(s: Sample, topN: number) {
  try {
    const meta = await sharp(s.imagePath).metadata();
    const mask = await readMaskClasses(s.maskPath!, { width: meta.width!, height: meta.height! });
    const { w, h } = fit(meta.width!, meta.height!);
    const image = await sharp(s.imagePath).removeAlpha().toColourspace('srgb').resize(w, h, { fit: 'fill' }).raw().toBuffer();
    const classes = nearest(mask.classes, mask.width, mask.height, w, h);
    const parts = aggregateParts(mask.classes, s.maskPath!);
    const counts = new Array<number>(NUM_PARTS).fill(0);
    for (const p of parts) if (p < NUM_PARTS) counts[p]++;
    const present = topNComponents(parts, topN);
    const top = [...present.keys()].filter((p) => present[p] === 1).sort((a, b) => counts[b] - counts[a] || a - b);
    return { w, h, image: new Uint8Array(image), classes, parts: nearest(parts, mask.width, mask.height, w, h), top, counts, total: parts.length };
  } catch {
    return null;
  }
}

export interface PreviewOptions {
  /** Samples with masks; `count` of them, evenly spread, are shown. */
  samples: Sample[];
  file: string;
  count?: number;
  /** How many parts CT marks present: the paper's n (loss.topN), 4. */
  topN?: number;
}

/** Writes the preview grid (atomically); resolves to how many images it shows (0: none had a readable mask, nothing written). */
export async function writePreview(o: PreviewOptions): Promise<number> {
  const count = o.count ?? 6;
  const topN = o.topN ?? 4;
  const withMasks = o.samples.filter((s) => s.maskPath !== null);
  // Evenly spread over the list (train then test), then the rest in order as stand-ins for unreadable ones.
  const picks = Array.from({ length: Math.min(count, withMasks.length) }, (_, i) => Math.floor((i * withMasks.length) / Math.min(count, withMasks.length)));
  const order = [...new Set([...picks, ...withMasks.keys()])];
  const rows: NonNullable<Awaited<ReturnType<typeof rowOf>>>[] = [];
  for (const i of order) {
    if (rows.length === count) break;
    const r = await rowOf(withMasks[i], topN);
    if (r) rows.push(r);
  }
  if (rows.length === 0) return 0;

  const cols = [0, CELL + GAP, 2 * (CELL + GAP), 3 * (CELL + GAP)];
  const canvas = new Canvas(cols[3] + LEGEND, HEADER + rows.length * (CELL + GAP));
  ['image', '19 classes', '8 parts', `ct: top ${topN}`].forEach((t, i) => canvas.text(cols[i] + 2, 2, t));
  rows.forEach((r, k) => {
    const y0 = HEADER + k * (CELL + GAP);
    const x0 = Math.floor((CELL - r.w) / 2);
    const yc = y0 + Math.floor((CELL - r.h) / 2);
    canvas.rgb(cols[0] + x0, yc, r.w, r.h, r.image);
    canvas.ids(cols[1] + x0, yc, r.w, r.h, r.classes, classColour);
    canvas.ids(cols[2] + x0, yc, r.w, r.h, r.parts, partColour);
    r.top.forEach((p, j) => {
      const y = y0 + 4 + j * (GLYPH_H + 6);
      canvas.rect(cols[3], y, 12, 12, BLACK);
      canvas.rect(cols[3] + 1, y + 1, 10, 10, PART_COLOURS[p]);
      canvas.text(cols[3] + 16, y, `${PART_CLASSES[p]} ${Math.round((100 * r.counts[p]) / r.total)}%`);
    });
  });
  writeFileAtomic(o.file, await canvas.png());
  return rows.length;
}
