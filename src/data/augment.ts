/**
 * Crop and horizontal flip, decided separately from applying them: the main thread decides (keyed
 * by seed, epoch and sample index, so the result does not depend on which thread decodes which
 * sample), and the decoding thread applies the same decision to the image and to its mask.
 */
import { errors } from '../errors.js';
import { Rng } from '../util/rng.js';

/** Top-left corner of a square crop in the resized image, and whether to mirror it. */
export interface CropFlip {
  x: number;
  y: number;
  flip: boolean;
}

/** Rng stream id of crop/flip draws ("CROP"). */
const CROP_STREAM = 0x43524f50;

function checkSizes(resized: number, crop: number): void {
  if (!Number.isInteger(crop) || !Number.isInteger(resized) || crop < 1 || crop > resized) {
    throw errors.invalidArgument(
      'crop',
      `input size ${crop} does not fit in the resized image (${resized})`,
      'set inputSize <= resize, both positive integers',
    );
  }
}

/** Training augmentation: a uniformly placed crop, mirrored with probability 1/2 when hflip. */
export function randomCropFlip(seed: number, epoch: number, sampleIndex: number, resized: number, crop: number, hflip: boolean): CropFlip {
  checkSizes(resized, crop);
  const rng = new Rng(seed, epoch, sampleIndex, CROP_STREAM);
  const x = rng.int(resized - crop + 1);
  const y = rng.int(resized - crop + 1);
  return { x, y, flip: hflip && rng.next() < 0.5 };
}

/** Evaluation: the centred crop (rounded towards the top-left when the margin is odd), unflipped. */
export function centerCrop(resized: number, crop: number): CropFlip {
  checkSizes(resized, crop);
  const m = Math.floor((resized - crop) / 2);
  return { x: m, y: m, flip: false };
}

/** Cuts the crop × crop window out of an interleaved (HWC) image, mirroring it when cf.flip. */
export function applyCropFlip(src: Uint8Array, channels: number, width: number, height: number, cf: CropFlip, crop: number): Uint8Array {
  if (src.length !== width * height * channels || cf.x < 0 || cf.y < 0 || cf.x + crop > width || cf.y + crop > height) {
    throw errors.invalidArgument(
      'crop',
      `window ${crop}x${crop} at (${cf.x}, ${cf.y}) does not fit a ${width}x${height}x${channels} image of ${src.length} bytes`,
      'decode the image at the resize the crop was drawn for',
    );
  }
  const out = new Uint8Array(crop * crop * channels);
  for (let oy = 0; oy < crop; oy++) {
    const rowIn = (cf.y + oy) * width;
    for (let ox = 0; ox < crop; ox++) {
      const sx = cf.x + (cf.flip ? crop - 1 - ox : ox);
      const i = (rowIn + sx) * channels;
      const o = (oy * crop + ox) * channels;
      for (let c = 0; c < channels; c++) out[o + c] = src[i + c];
    }
  }
  return out;
}
