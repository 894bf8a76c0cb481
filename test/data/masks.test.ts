import { describe, expect, it } from 'vitest';
import { aggregateParts, topNComponents } from '../../src/data/masks.js';
import { isSlferError } from '../../src/errors.js';

describe('aggregateParts', () => {
  it('maps all 19 face-parsing classes onto the 8 parts', () => {
    // Each class twice, in a scrambled order, so the mapping is checked position by position.
    const mask = Uint8Array.from({ length: 38 }, (_, i) => (i * 7) % 19);
    const expected: Record<number, number> = {
      0: 0, 1: 1, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 3, 8: 3, 9: 3,
      10: 4, 11: 5, 12: 5, 13: 5, 14: 6, 15: 6, 16: 6, 17: 7, 18: 7,
    };
    expect(new Set(mask).size).toBe(19);
    expect(Array.from(aggregateParts(mask))).toEqual(Array.from(mask, (v) => expected[v]));
  });

  it('rejects a value outside 0..18, naming the file and the value', () => {
    const source = '/data/Mask/aligned/train_00042_aligned.png';
    let err: unknown;
    try {
      aggregateParts(Uint8Array.from([0, 1, 19, 2]), source);
    } catch (e) {
      err = e;
    }
    expect(isSlferError(err)).toBe(true);
    expect((err as Error).message).toContain(source);
    expect((err as Error).message).toContain('19');
  });
});

describe('topNComponents', () => {
  const mask = (counts: Record<number, number>) => Uint8Array.from(Object.entries(counts).flatMap(([part, n]) => Array(n).fill(Number(part))));

  it('marks the n parts with the most pixels', () => {
    const parts = mask({ 0: 50, 1: 30, 2: 5, 4: 10, 5: 8, 7: 20 });
    expect(Array.from(topNComponents(parts, 3))).toEqual([1, 1, 0, 0, 0, 0, 0, 1]);
  });

  it('breaks ties by the lower part index', () => {
    const parts = mask({ 1: 10, 2: 7, 4: 7, 5: 7, 6: 3 });
    // 1 first, then the three-way tie at 7 pixels: 2 and 4 win over 5.
    expect(Array.from(topNComponents(parts, 3))).toEqual([0, 1, 1, 0, 1, 0, 0, 0]);
  });

  it('marks only the parts present when fewer than n are', () => {
    const parts = mask({ 3: 4, 6: 1 });
    expect(Array.from(topNComponents(parts, 5))).toEqual([0, 0, 0, 1, 0, 0, 1, 0]);
    expect(Array.from(topNComponents(new Uint8Array(0), 5))).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('honours numParts', () => {
    expect(topNComponents(Uint8Array.from([0, 1, 1]), 1, 4)).toEqual(Float32Array.from([0, 1, 0, 0]));
  });
});
