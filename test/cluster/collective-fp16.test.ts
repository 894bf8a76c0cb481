import { describe, expect, it } from 'vitest';
import { addHalf, decodeHalf, encodeHalf, fromHalf, toHalf } from '../../cluster/collective/fp16.js';

describe('fp16 conversion (round to nearest even)', () => {
  it('converts exactly representable values both ways', () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // largest half
      [2 ** -14, 0x0400], // smallest normal
      [0.333251953125, 0x3555],
      [1 + 2 ** -10, 0x3c01],
    ];
    for (const [v, h] of cases) {
      expect(toHalf(v)).toBe(h);
      expect(fromHalf(h)).toBe(v);
    }
    expect(toHalf(-0)).toBe(0x8000);
    expect(Object.is(fromHalf(0x8000), -0)).toBe(true);
  });

  it('rounds halfway cases to even and others to nearest', () => {
    const ulp = 2 ** -10; // spacing of halves in [1, 2)
    expect(toHalf(1 + ulp / 2)).toBe(0x3c00); // tie, 1.0 is even
    expect(toHalf(1 + (3 * ulp) / 2)).toBe(0x3c02); // tie, rounds up to even
    expect(toHalf(1 + ulp / 2 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(toHalf(1 + ulp / 2 - 2 ** -20)).toBe(0x3c00); // just below
    expect(toHalf(2 - ulp / 4)).toBe(0x4000); // carries into the exponent
  });

  it('handles subnormals, including rounding into and out of them', () => {
    expect(toHalf(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(fromHalf(0x0001)).toBe(2 ** -24);
    expect(toHalf(3 * 2 ** -24)).toBe(0x0003);
    expect(fromHalf(0x03ff)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(toHalf(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest: even is 0
    expect(toHalf(2 ** -25 * 1.5)).toBe(0x0001);
    expect(toHalf(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 units: even
    expect(toHalf(2 ** -26)).toBe(0x0000);
    expect(toHalf(-(2 ** -24))).toBe(0x8001);
    expect(toHalf(1023.5 * 2 ** -24)).toBe(0x0400); // rounds up into the smallest normal
  });

  it('keeps infinities and NaN, and overflows to infinity past 65520', () => {
    expect(toHalf(Infinity)).toBe(0x7c00);
    expect(toHalf(-Infinity)).toBe(0xfc00);
    expect(fromHalf(0x7c00)).toBe(Infinity);
    expect(fromHalf(0xfc00)).toBe(-Infinity);
    expect((toHalf(NaN) & 0x7c00) === 0x7c00 && (toHalf(NaN) & 0x3ff) !== 0).toBe(true);
    expect(Number.isNaN(fromHalf(0x7e00))).toBe(true);
    expect(Number.isNaN(fromHalf(toHalf(NaN)))).toBe(true);
    expect(toHalf(65519)).toBe(0x7bff); // rounds down to the largest half
    expect(toHalf(65520)).toBe(0x7c00); // tie rounds to even, which is infinity
    expect(toHalf(1e6)).toBe(0x7c00);
    expect(toHalf(-1e6)).toBe(0xfc00);
  });

  it('matches an independent reference on random float32 values', () => {
    // Reference: pick the nearer of the two neighbouring halves, ties to the even one.
    const halves = Array.from({ length: 0x7c01 }, (_, h) => fromHalf(h)); // 0 .. +inf, increasing
    const reference = (x: number): number => {
      const a = Math.abs(x);
      let lo = 0;
      let hi = halves.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (halves[mid] <= a) lo = mid;
        else hi = mid;
      }
      let h: number;
      if (lo === 0x7bff && a >= 65520) h = 0x7c00;
      else if (halves[lo] === a) h = lo;
      else {
        const dLo = a - halves[lo];
        const dHi = halves[hi] - a;
        h = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
      }
      return (x < 0 || Object.is(x, -0) ? 0x8000 : 0) | h;
    };
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    let seed = 12345;
    for (let i = 0; i < 20000; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      // exponents around the half range: from deep subnormal to overflow
      u[0] = (seed & 0x807fffff) | ((((seed >>> 23) % 48) + 97) << 23);
      expect(toHalf(f[0]), `x=${f[0]}`).toBe(reference(f[0]));
    }
  });

  it('encodes, decodes and accumulates arrays', () => {
    const src = Float32Array.from([1, -2.5, 1e-8, 70000, 0.1]);
    const h = new Uint16Array(src.length);
    encodeHalf(src, h);
    expect(Array.from(h)).toEqual(Array.from(src, (x) => toHalf(x)));
    const back = new Float32Array(src.length);
    decodeHalf(h, back);
    expect(Array.from(back)).toEqual(Array.from(h, (x) => Math.fround(fromHalf(x))));
    const acc = Float32Array.from([1, 1, 1, 1, 1]);
    addHalf(h, acc);
    expect(Array.from(acc)).toEqual(Array.from(back, (x) => Math.fround(1 + x)));
  });
});
