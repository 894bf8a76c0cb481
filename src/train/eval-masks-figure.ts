/**
 * The picture `eval --masks` writes: one row per test image with the crop the model saw, its 8-part
 * label, ST's prediction and a caption (true and predicted expression, ST's pixel accuracy), at the
 * input size so every pixel is one the model saw or predicted; a legend of the part colours beside.
 * Layout only: what to draw comes in as MasksRow, already computed.
 */
import { PART_COLOURS, partColour, UNKNOWN_COLOUR } from '../data/label-colours.js';
import { PART_CLASSES } from '../data/labels.js';
import { GLYPH_H, textWidth } from '../util/bitmap-font.js';
import { BLACK, Canvas, type Colour } from '../util/canvas.js';

export interface MasksRow {
  /** The crop the model saw, de-normalised: size×size interleaved RGB bytes. */
  image: Uint8Array;
  /** Its 8-part label (UNKNOWN_PART where unknown), or why there is none ("no mask"). */
  label: Uint8Array | { note: string };
  /** ST's argmax, size×size part ids. */
  predicted: Uint8Array;
  trueExpression: string;
  predictedExpression: string;
  /** Correct known pixels / known pixels; null without a mask or a known pixel. */
  pixelAccuracy: number | null;
}

const GAP = 4;
const HEADER = 16;
const LINE = GLYPH_H + 2;
const CAPTION_LINES = 3;
/** "pred: happiness" is the longest caption line (15 characters), plus a space. */
const CAPTION_W = textWidth('x'.repeat(16));
const SWATCH = 12;
const LEGEND_LINE = SWATCH + 4;
const LEGEND_ENTRIES = PART_CLASSES.length + 1; // the parts, then unknown
const LEGEND_W = SWATCH + 4 + textWidth('background');
const FRAME: Colour = [200, 200, 200];
const NO_LABEL: Colour = [235, 235, 235];
const RIGHT: Colour = [0, 130, 0];
const WRONG: Colour = [200, 0, 0];

/** Where everything goes for `rows` rows at input size `size` (exported for the tests' pixel checks). */
export function masksFigureLayout(rows: number, size: number) {
  const rowHeight = Math.max(size, CAPTION_LINES * LINE);
  const columns = [0, 1, 2].map((i) => GAP + i * (size + GAP));
  const caption = GAP + 3 * (size + GAP);
  const legend = caption + CAPTION_W + GAP;
  return {
    width: legend + LEGEND_W + GAP,
    height: HEADER + Math.max(rows * (rowHeight + GAP), LEGEND_ENTRIES * LEGEND_LINE),
    /** x of the image, label and prediction columns. */
    columns,
    /** x of the captions and of the legend. */
    caption,
    legend,
    /** y of row k's top (cells and caption start there). */
    rowTop: (k: number) => HEADER + k * (rowHeight + GAP),
    lineHeight: LINE,
  };
}

/** Words on lines no wider than `width` (a word longer than that gets a line of its own). */
function wrap(s: string, width: number): string[] {
  const lines: string[] = [];
  for (const word of s.split(' ')) {
    const last = lines.length - 1;
    if (last >= 0 && textWidth(`${lines[last]} ${word}`) <= width) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  return lines;
}

export const formatPixelAccuracy = (a: number | null): string => `st acc: ${a === null ? 'n/a' : `${(100 * a).toFixed(1)}%`}`;

export function drawMasksFigure(rows: MasksRow[], size: number): Canvas {
  const L = masksFigureLayout(rows.length, size);
  const canvas = new Canvas(L.width, L.height);
  // Each column's title, the longest that fits over it.
  const titles = [['image'], ['label'], ['st prediction', 'st pred', 'st']];
  titles.forEach((t, i) => canvas.text(L.columns[i], 2, t.find((s) => textWidth(s) <= size + GAP) ?? t.at(-1)!));
  canvas.text(L.legend, 2, 'parts');

  rows.forEach((r, k) => {
    const y = L.rowTop(k);
    const [xi, xl, xp] = L.columns;
    for (const x of L.columns) canvas.frame(x, y, size, size, FRAME);
    canvas.rgb(xi, y, size, size, r.image);
    if (r.label instanceof Uint8Array) canvas.ids(xl, y, size, size, r.label, partColour);
    else {
      canvas.rect(xl, y, size, size, NO_LABEL);
      wrap(r.label.note, size - 4).forEach((line, j) => canvas.text(xl + 2, y + 2 + j * LINE, line, BLACK, size - 2));
    }
    canvas.ids(xp, y, size, size, r.predicted, partColour);
    canvas.text(L.caption, y, `true: ${r.trueExpression}`);
    canvas.text(L.caption, y + LINE, `pred: ${r.predictedExpression}`, r.predictedExpression === r.trueExpression ? RIGHT : WRONG);
    canvas.text(L.caption, y + 2 * LINE, formatPixelAccuracy(r.pixelAccuracy));
  });

  [...PART_CLASSES, 'unknown'].forEach((name, p) => {
    const y = HEADER + p * LEGEND_LINE;
    canvas.rect(L.legend, y, SWATCH, SWATCH, BLACK);
    canvas.rect(L.legend + 1, y + 1, SWATCH - 2, SWATCH - 2, p < PART_COLOURS.length ? PART_COLOURS[p] : UNKNOWN_COLOUR);
    canvas.text(L.legend + SWATCH + 4, y, name);
  });
  return canvas;
}
