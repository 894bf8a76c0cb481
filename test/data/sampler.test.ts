import { describe, expect, it } from 'vitest';
import { epochIndices, stepsPerEpoch } from '../../src/data/sampler.js';

const shards = (n: number, worldSize: number, dropLast: boolean, epoch = 0) =>
  Array.from({ length: worldSize }, (_, rank) => Array.from(epochIndices({ n, epoch, seed: 5, shuffle: true, rank, worldSize, dropLast })));

describe('epochIndices', () => {
  it('is one seeded permutation per epoch', () => {
    const a = Array.from(epochIndices({ n: 50, epoch: 3, seed: 1, shuffle: true }));
    expect([...a].sort((x, y) => x - y)).toEqual([...Array(50).keys()]);
    expect(Array.from(epochIndices({ n: 50, epoch: 3, seed: 1, shuffle: true }))).toEqual(a);
    expect(Array.from(epochIndices({ n: 50, epoch: 4, seed: 1, shuffle: true }))).not.toEqual(a);
    expect(Array.from(epochIndices({ n: 5, epoch: 3, seed: 1, shuffle: false }))).toEqual([0, 1, 2, 3, 4]);
  });

  it('interleaves ranks and pads from the start of the permutation', () => {
    const full = Array.from(epochIndices({ n: 10, epoch: 0, seed: 5, shuffle: true }));
    const s = shards(10, 4, false);
    expect(s.map((r) => r.length)).toEqual([3, 3, 3, 3]);
    const padded = [...full, full[0], full[1]];
    s.forEach((r, rank) => expect(r).toEqual([padded[rank], padded[rank + 4], padded[rank + 8]]));
    expect(new Set(s.flat()).size).toBe(10);
  });

  it('pads cyclically when there are fewer samples than ranks', () => {
    expect(shards(2, 5, false).map((r) => r.length)).toEqual([1, 1, 1, 1, 1]);
    expect(new Set(shards(2, 5, false).flat()).size).toBe(2);
  });

  it('drops the tail with dropLast, leaving disjoint equal shards', () => {
    const s = shards(10, 4, true);
    expect(s.map((r) => r.length)).toEqual([2, 2, 2, 2]);
    expect(new Set(s.flat()).size).toBe(8);
  });

  it('rejects a rank outside the world', () => {
    expect(() => epochIndices({ n: 4, epoch: 0, seed: 0, shuffle: false, rank: 2, worldSize: 2 })).toThrow(/rank 2/);
  });
});

describe('stepsPerEpoch', () => {
  it('counts batches of one rank', () => {
    expect(stepsPerEpoch(10, 4, 2, false)).toBe(2); // 3 per rank
    expect(stepsPerEpoch(10, 4, 2, true)).toBe(1);
    expect(stepsPerEpoch(10, 4, 2, false, true)).toBe(1); // 2 per rank
    expect(stepsPerEpoch(12271, 1, 64, false)).toBe(192);
  });
});
