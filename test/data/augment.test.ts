import { describe, expect, it } from 'vitest';
import { applyCropFlip, centerCrop, randomCropFlip, type CropFlip } from '../../src/data/augment.js';

const R = 16; // resized side
const C = 11; // crop side

/** RGB image with pixel (x, y) = (x, y, 7), and a 1-channel mask with pixel (x, y) = y*R + x. */
function coordinateImages(): { rgb: Uint8Array; mask: Uint8Array } {
  const rgb = new Uint8Array(R * R * 3);
  const mask = new Uint8Array(R * R);
  for (let y = 0; y < R; y++) {
    for (let x = 0; x < R; x++) {
      rgb.set([x, y, 7], (y * R + x) * 3);
      mask[y * R + x] = y * R + x;
    }
  }
  return { rgb, mask };
}

describe('applyCropFlip', () => {
  it('gives image and mask the identical crop and flip', () => {
    const { rgb, mask } = coordinateImages();
    let flips = 0;
    for (let i = 0; i < 40; i++) {
      const cf = randomCropFlip(123, 4, i, R, C, true);
      flips += cf.flip ? 1 : 0;
      const img = applyCropFlip(rgb, 3, R, R, cf, C);
      const m = applyCropFlip(mask, 1, R, R, cf, C);
      for (let oy = 0; oy < C; oy++) {
        for (let ox = 0; ox < C; ox++) {
          const o = oy * C + ox;
          const x = img[o * 3];
          const y = img[o * 3 + 1];
          expect(img[o * 3 + 2]).toBe(7);
          expect(m[o]).toBe(y * R + x);
          expect(y).toBe(cf.y + oy);
          expect(x).toBe(cf.flip ? cf.x + C - 1 - ox : cf.x + ox);
        }
      }
    }
    expect(flips).toBeGreaterThan(0);
    expect(flips).toBeLessThan(40);
  });

  it('flips by reversing every row', () => {
    const { rgb } = coordinateImages();
    const plain = applyCropFlip(rgb, 3, R, R, { x: 2, y: 3, flip: false }, C);
    const flipped = applyCropFlip(rgb, 3, R, R, { x: 2, y: 3, flip: true }, C);
    for (let oy = 0; oy < C; oy++) {
      for (let ox = 0; ox < C; ox++) {
        const a = (oy * C + ox) * 3;
        const b = (oy * C + (C - 1 - ox)) * 3;
        expect(Array.from(flipped.subarray(a, a + 3))).toEqual(Array.from(plain.subarray(b, b + 3)));
      }
    }
    expect(flipped[0]).toBe(2 + C - 1);
    expect(plain[0]).toBe(2);
  });

  it('rejects a window that does not fit', () => {
    const { mask } = coordinateImages();
    expect(() => applyCropFlip(mask, 1, R, R, { x: 6, y: 0, flip: false }, C)).toThrow(/does not fit/);
  });
});

describe('crop placement', () => {
  it('centres the evaluation crop and never flips it', () => {
    expect(centerCrop(20, 10)).toEqual({ x: 5, y: 5, flip: false });
    const odd = centerCrop(R, C); // margin 5: 2 before, 3 after
    expect(odd).toEqual({ x: 2, y: 2, flip: false });
    const { rgb } = coordinateImages();
    const out = applyCropFlip(rgb, 3, R, R, centerCrop(R, 10), 10);
    expect([out[0], out[1]]).toEqual([3, 3]);
  });

  it('draws the same crop for the same keys and different crops for another epoch', () => {
    const draws = (epoch: number): CropFlip[] => Array.from({ length: 20 }, (_, i) => randomCropFlip(9, epoch, i, R, C, true));
    expect(draws(0)).toEqual(draws(0));
    expect(draws(1)).not.toEqual(draws(0));
    expect(randomCropFlip(10, 0, 3, R, C, true)).toEqual(randomCropFlip(10, 0, 3, R, C, true));
  });

  it('covers every offset, and flips only when asked', () => {
    const xs = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const cf = randomCropFlip(1, 0, i, R, C, false);
      xs.add(cf.x);
      expect(cf.flip).toBe(false);
      expect(cf.x + C).toBeLessThanOrEqual(R);
      expect(cf.y + C).toBeLessThanOrEqual(R);
    }
    expect([...xs].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('rejects a crop larger than the resized image', () => {
    expect(() => centerCrop(10, 11)).toThrow(/does not fit/);
    expect(() => randomCropFlip(0, 0, 0, 10, 11, true)).toThrow(/does not fit/);
  });
});
