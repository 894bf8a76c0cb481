/**
 * Reads a face-parsing mask file into one class id per pixel, and decides whether it can be trusted.
 *
 * Masks are decoded with fast-png, not with libvips: libvips expands a palette PNG into its colours
 * and scales 16-bit samples to 8 bits, and face-parsing tools save masks both ways (PIL's "P" mode
 * with the class ids as palette indices; 16-bit greyscale). Class ids are the palette indices, or the
 * grey values at any bit depth; UNKNOWN_CLASS (255) marks a pixel no part could be assigned to. What
 * would silently train the wrong thing is refused with the file named: a colour rendering of a mask
 * (channels that differ), ids of 19 or more other than 255, a mask whose aspect
 * ratio is not its image's (resizing cannot explain it). A file that is not a readable PNG is only
 * unreadable, like a broken image: the sample is skipped and listed.
 */
import { readFile } from 'node:fs/promises';
import { decode, type DecodedPng } from 'fast-png';
import { PARSING_CLASSES, UNKNOWN_CLASS } from './labels.js';

/** One class id per pixel, row-major. */
export interface MaskClasses {
  width: number;
  height: number;
  classes: Uint8Array;
}

/** The mask cannot be used and should not be skipped quietly: it would train the wrong thing. */
export class MaskInvalid extends Error {}

/** The file is not a readable PNG: the sample is skipped with this reason. */
export class MaskUnreadable extends Error {}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * The class ids of the mask at `path`, checked against its image's size (width, height): the mask
 * may have another resolution (BiSeNet tools write 512x512 for any input) but not another shape.
 */
export async function readMaskClasses(path: string, image: { width: number; height: number }): Promise<MaskClasses> {
  const bytes = await readFile(path);
  if (bytes.length < PNG_SIGNATURE.length || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) {
    throw new MaskUnreadable(bytes.length === 0 ? 'mask: empty file' : 'mask: not a PNG file');
  }
  let png: DecodedPng;
  try {
    png = decode(bytes);
  } catch (e) {
    throw new MaskUnreadable(`mask: ${(e as Error).message}`);
  }
  const { width, height } = png;
  if (!(width > 0 && height > 0)) throw new MaskUnreadable(`mask: ${width}x${height} pixels`);
  checkShape(width, height, image);
  const ids = sampleValues(png);
  const classes = new Uint8Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] >= PARSING_CLASSES.length && ids[i] !== UNKNOWN_CLASS) {
      throw new MaskInvalid(
        `holds the class id ${ids[i]} at pixel (${i % width}, ${Math.floor(i / width)}); face-parsing masks hold ids 0..${PARSING_CLASSES.length - 1}, or ${UNKNOWN_CLASS} for unknown`,
      );
    }
    classes[i] = ids[i];
  }
  return { width, height, classes };
}

/** Same aspect ratio as the image, to within a pixel of rounding (1% for large masks). */
function checkShape(width: number, height: number, image: { width: number; height: number }): void {
  const expectedHeight = (width * image.height) / image.width;
  if (Math.abs(height - expectedHeight) > Math.max(1, 0.01 * height)) {
    throw new MaskInvalid(`is ${width}x${height} for a ${image.width}x${image.height} image: another aspect ratio, so it cannot be resized onto the image`);
  }
}

/**
 * Per pixel: the palette index (indexed PNG), the grey value (greyscale, with or without alpha, any
 * depth), or the grey value of an RGB(A) PNG whose three channels are equal everywhere.
 */
function sampleValues(png: DecodedPng): ArrayLike<number> {
  const { width, height, depth, channels, data } = png;
  const pixels = width * height;
  if (depth < 8) {
    // fast-png leaves 1/2/4-bit samples packed, each row starting on a byte.
    const out = new Uint8Array(pixels);
    const rowBytes = Math.ceil((width * channels * depth) / 8);
    const mask = (1 << depth) - 1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const bit = x * channels * depth;
        out[y * width + x] = (data[y * rowBytes + (bit >> 3)] >> (8 - depth - (bit & 7))) & mask;
      }
    }
    return out;
  }
  if (channels === 1) return data;
  const out = new Uint16Array(pixels);
  for (let i = 0; i < pixels; i++) {
    const r = data[i * channels];
    if (channels >= 3 && (data[i * channels + 1] !== r || data[i * channels + 2] !== r)) {
      throw new MaskInvalid(
        `is a colour picture (pixel (${i % width}, ${Math.floor(i / width)}) is rgb(${r}, ${data[i * channels + 1]}, ${data[i * channels + 2]})), not class ids`,
      );
    }
    out[i] = r;
  }
  return out;
}
