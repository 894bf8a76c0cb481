/** Real image files for the data tests, written with sharp into a temporary folder. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';

export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `slfer-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** An RGB image whose pixel (x, y) is rgb(x, y). JPEG is lossy: compare its pixels loosely. */
export async function writeRgb(
  path: string,
  width: number,
  height: number,
  rgb: (x: number, y: number) => [number, number, number],
): Promise<void> {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(rgb(x, y), (y * width + x) * 3);
  }
  mkdirSync(dirname(path), { recursive: true });
  const img = sharp(data, { raw: { width, height, channels: 3 } });
  await (path.endsWith('.png') ? img.png() : img.jpeg({ quality: 95 })).toFile(path);
}

/** A greyscale image, stored with one channel (value(x, y) per pixel). */
export async function writeGrey(path: string, width: number, height: number, value: (x: number, y: number) => number): Promise<void> {
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = value(x, y);
  mkdirSync(dirname(path), { recursive: true });
  const img = sharp(data, { raw: { width, height, channels: 1 } }).toColourspace('b-w');
  await (path.endsWith('.png') ? img.png() : img.jpeg({ quality: 95 })).toFile(path);
}

/** A face-parsing mask as BiSeNet tools save it: an 8-bit single-channel PNG of class indices. */
export const writeMask = (path: string, width: number, height: number, cls: (x: number, y: number) => number) =>
  writeGrey(path, width, height, cls);
