import { describe, expect, it } from 'vitest';
import { Rng, hash32 } from '../../src/util/rng.js';

describe('Rng', () => {
  it('gives the same stream for the same seed and stream keys', () => {
    const a = new Rng(7, 1, 2);
    const b = new Rng(7, 1, 2);
    expect(Array.from({ length: 5 }, () => a.nextU32())).toEqual(Array.from({ length: 5 }, () => b.nextU32()));
  });
  it('resumes exactly from a saved state', () => {
    const a = new Rng(3);
    a.next();
    const saved = a.state;
    const x = a.next();
    expect(new Rng(saved).next()).toBe(x);
  });
  it('separates streams by key', () => {
    expect(hash32(1, 2)).not.toBe(hash32(2, 1));
    expect(new Rng(1, 0).nextU32()).not.toBe(new Rng(1, 1).nextU32());
  });
  it('shuffles into a permutation', () => {
    const p = Array.from(new Rng(5).permutation(100)).sort((x, y) => x - y);
    expect(p).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});
