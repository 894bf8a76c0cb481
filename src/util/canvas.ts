/**
 * An RGB raster to draw figures on (preview grids, eval's ST pictures): filled rectangles, pixel
 * blocks, text in the built-in bitmap font, then one PNG. Plain pixels, so a figure's bytes depend
 * only on what was drawn.
 */
import sharp from 'sharp';
import { GLYPH_W, glyphRows } from './bitmap-font.js';

export type Colour = readonly [number, number, number];

export const WHITE: Colour = [255, 255, 255];
export const BLACK: Colour = [0, 0, 0];

export class Canvas {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }

  /** One pixel; outside the canvas is ignored, so drawing near an edge needs no clipping. */
  set(x: number, y: number, c: Colour): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.data.set(c, (y * this.width + x) * 3);
  }

  rect(x: number, y: number, w: number, h: number, c: Colour): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, c);
  }

  /** A one-pixel outline just outside the w×h box at (x, y), so the box's own pixels stay as drawn. */
  frame(x: number, y: number, w: number, h: number, c: Colour): void {
    this.rect(x - 1, y - 1, w + 2, 1, c);
    this.rect(x - 1, y + h, w + 2, 1, c);
    this.rect(x - 1, y, 1, h, c);
    this.rect(x + w, y, 1, h, c);
  }

  /** A w×h block of interleaved RGB bytes. */
  rgb(x: number, y: number, w: number, h: number, pixels: Uint8Array): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, [pixels[(j * w + i) * 3], pixels[(j * w + i) * 3 + 1], pixels[(j * w + i) * 3 + 2]]);
  }

  /** A w×h block of ids, each painted in colour(id). */
  ids(x: number, y: number, w: number, h: number, ids: ArrayLike<number>, colour: (id: number) => Colour): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, colour(ids[j * w + i]));
  }

  /** One line of text, its top-left at (x, y); pixels beyond maxWidth are not drawn (a caption stays in its cell). */
  text(x: number, y: number, s: string, c: Colour = BLACK, maxWidth = Infinity): void {
    [...s].forEach((ch, k) => {
      const rows = glyphRows(ch);
      if (!rows) return; // space, or a character the font lacks
      rows.forEach((bits, row) => {
        for (let col = 0; col < GLYPH_W; col++) {
          const dx = k * GLYPH_W + col;
          if (bits & (0x40 >> col) && dx < maxWidth) this.set(x + dx, y + row, c);
        }
      });
    });
  }

  /** The canvas as an 8-bit RGB PNG. */
  png(): Promise<Buffer> {
    return sharp(this.data, { raw: { width: this.width, height: this.height, channels: 3 } }).png().toBuffer();
  }
}
