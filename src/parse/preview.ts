/**
 * `parse --preview FILE.png`: a few images with their labels, as the paper's Fig. 5 shows them. One
 * row per image: the image, its mask coloured by the 19 face-parsing classes, the 8-part aggregate
 * that SLFER's ST learns, and the top-n parts that CT's target marks present (with their share of
 * the image). A look at the labels before a 40-epoch run trains on them.
 */
import sharp from 'sharp';
import { readMaskClasses } from '../data/mask-file.js';
import { aggregateParts, topNComponents } from '../data/masks.js';
import { NUM_PARTS, PART_CLASSES, UNKNOWN_CLASS, UNKNOWN_PART } from '../data/labels.js';
import type { Sample } from '../data/types.js';
import { writeFileAtomic } from '../util/atomic.js';

const CELL = 128;
const GAP = 4;
const HEADER = 16;
const LEGEND = 124;
const WHITE: Rgb = [255, 255, 255];
const GREY: Rgb = [150, 150, 150];
type Rgb = [number, number, number];

/** face-parsing.PyTorch's part_colors (test.py's vis_parsing_maps), background white as there. */
export const CLASS_COLOURS: readonly Rgb[] = [
  WHITE, [255, 85, 0], [255, 170, 0], [255, 0, 85], [255, 0, 170], [0, 255, 0], [85, 255, 0], [170, 255, 0], [0, 255, 85], [0, 255, 170],
  [0, 0, 255], [85, 0, 255], [170, 0, 255], [0, 85, 255], [0, 170, 255], [255, 255, 0], [255, 255, 85], [255, 255, 170], [255, 0, 255],
]; // prettier-ignore
/** PART_CLASSES order: background, skin, eye, ear, nose, mouth, neck, hair. */
export const PART_COLOURS: readonly Rgb[] = [WHITE, [250, 200, 160], [0, 150, 255], [255, 160, 0], [0, 190, 0], [225, 0, 60], [150, 90, 255], [100, 60, 30]];

/**
 * A 7x12 bitmap font (rasterised once from DejaVu Sans Mono at 11px): each glyph is 12 rows, one hex
 * byte per row, bit 6 the leftmost pixel. Built in, so the preview looks the same on a machine with
 * no fonts installed.
 */
const GLYPHS: Record<string, string> = {
  'a': '000000003c063e22263e0000', 'b': '002020203c362222363c0000', 'c': '000000001e302020301e0000',
  'd': '000202021e262626261e0000', 'e': '000000001c223e20201e0000', 'f': '000e08083e08080808080000',
  'g': '000000001e262626261e043c', 'h': '002020203c36222222220000', 'i': '0008000038080808083e0000',
  'j': '000800003808080808080838', 'k': '00202020262c383c24220000', 'l': '0038181818181818180e0000',
  'm': '000000003e2a2a2a2a2a0000', 'n': '000000003c36222222220000', 'o': '000000001c262222261c0000',
  'p': '000000003c362222363c2020', 'q': '000000001e262222261e0202', 'r': '000000001e18101010100000',
  's': '000000001c20380c063c0000', 't': '000010103e101010180e0000', 'u': '0000000022222222261e0000',
  'v': '00000000222624141c180000', 'w': '0000000043422a3a36340000', 'x': '000000002614181834220000',
  'y': '000000002222141418081830', 'z': '000000003e040810103e0000', '0': '00001c3622222a22361c0000',
  '1': '0000380808080808083e0000', '2': '00003c2606040818303e0000', '3': '00001c26061c0602263c0000',
  '4': '00000c0c1424247e04040000', '5': '00003c20203c0602063c0000', '6': '00001c30203c2622261c0000',
  '7': '00003e040404080818100000', '8': '00001c26261c2622261c0000', '9': '00001c2622261e02043c0000',
  '-': '0000000000001c0000000000', ':': '000000000808000008080000', '/': '000006040408081010202000',
  '(': '000408081810101808080400', ')': '001008080808080808181000', '.': '000000000000000008080000',
  '%': '000030483204102e0a0e0000',
}; // prettier-ignore
const GLYPH_W = 7;
const GLYPH_H = 12;

class Canvas {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }
  set(x: number, y: number, c: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.data.set(c, (y * this.width + x) * 3);
  }
  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, c);
  }
  rgb(x: number, y: number, w: number, h: number, pixels: Uint8Array): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, [pixels[(j * w + i) * 3], pixels[(j * w + i) * 3 + 1], pixels[(j * w + i) * 3 + 2]]);
  }
  text(x: number, y: number, s: string, c: Rgb = [0, 0, 0]): void {
    [...s.toLowerCase()].forEach((ch, k) => {
      const g = GLYPHS[ch];
      if (!g) return; // space, or a character the font lacks
      for (let row = 0; row < GLYPH_H; row++) {
        const bits = parseInt(g.slice(row * 2, row * 2 + 2), 16);
        for (let col = 0; col < GLYPH_W; col++) if (bits & (0x40 >> col)) this.set(x + k * GLYPH_W + col, y + row, c);
      }
    });
  }
}

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

const colourOf = (palette: readonly Rgb[], unknown: number) => (v: number) => (v === unknown ? GREY : (palette[v] ?? GREY));

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
    const paint = (col: number, ids: Uint8Array, colour: (v: number) => Rgb) => {
      for (let y = 0; y < r.h; y++) for (let x = 0; x < r.w; x++) canvas.set(cols[col] + x0 + x, yc + y, colour(ids[y * r.w + x]));
    };
    paint(1, r.classes, colourOf(CLASS_COLOURS, UNKNOWN_CLASS));
    paint(2, r.parts, colourOf(PART_COLOURS, UNKNOWN_PART));
    r.top.forEach((p, j) => {
      const y = y0 + 4 + j * (GLYPH_H + 6);
      canvas.rect(cols[3], y, 12, 12, [0, 0, 0]);
      canvas.rect(cols[3] + 1, y + 1, 10, 10, PART_COLOURS[p]);
      canvas.text(cols[3] + 16, y, `${PART_CLASSES[p]} ${Math.round((100 * r.counts[p]) / r.total)}%`);
    });
  });
  const png = await sharp(canvas.data, { raw: { width: canvas.width, height: canvas.height, channels: 3 } }).png().toBuffer();
  writeFileAtomic(o.file, png);
  return rows.length;
}
