import { describe, expect, it } from 'vitest';
import { DEFAULT_BUCKET_BYTES, pack, planBuckets, unpack } from '../../cluster/collective/buckets.js';

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 2 ** 32);
}

describe('gradient buckets', () => {
  it('groups consecutive tensors up to the byte budget; a bigger tensor gets its own bucket', () => {
    const b = planBuckets([10, 20, 30, 100, 5, 5, 0, 40], 40 * 4);
    expect(b.map((x) => [x.first, x.end, x.flat.length])).toEqual([
      [0, 2, 30], // 10 + 20 fit, + 30 would not
      [2, 3, 30],
      [3, 4, 100], // too big for any bucket: alone
      [4, 7, 10], // 5 + 5 + 0
      [7, 8, 40], // exactly the budget
    ]);
    expect(b[0].offsets).toEqual([0, 10, 30]);
    expect(planBuckets([])).toEqual([]);
    expect(planBuckets([1, 2, 3]).length).toBe(1);
    expect(DEFAULT_BUCKET_BYTES).toBe(25 * 1024 * 1024);
  });

  it('splits and joins exactly for random sizes and budgets, reusing each bucket buffer', () => {
    const next = rng(7);
    for (let trial = 0; trial < 30; trial++) {
      const sizes = Array.from({ length: 1 + Math.floor(next() * 40) }, () => (next() < 0.1 ? 0 : Math.floor(next() ** 3 * 5000)));
      const budget = 4 * (1 + Math.floor(next() * 3000));
      const buckets = planBuckets(sizes, budget);
      // every tensor exactly once, in order, and no bucket over budget unless it holds one tensor
      expect(buckets.flatMap((b) => Array.from({ length: b.end - b.first }, (_, k) => b.first + k))).toEqual(sizes.map((_, i) => i));
      for (const b of buckets) if (b.end - b.first > 1) expect(b.flat.byteLength).toBeLessThanOrEqual(budget);
      for (let k = 1; k < buckets.length; k++) {
        // greedy: the next tensor did not fit in the previous bucket
        const prev = buckets[k - 1];
        expect(prev.flat.length + sizes[buckets[k].first]).toBeGreaterThan(budget / 4);
      }
      const flats = buckets.map((b) => b.flat);
      for (let step = 0; step < 2; step++) {
        const tensors = sizes.map((n) => Float32Array.from({ length: n }, () => next() - 0.5));
        const copies = tensors.map((t) => t.slice());
        const packed = buckets.map((b) => pack(b, tensors));
        packed.forEach((p, k) => expect(p).toBe(flats[k])); // same buffer every step
        for (const b of buckets) {
          for (let t = b.first; t < b.end; t++) expect(same(b.flat.subarray(b.offsets[t - b.first], b.offsets[t - b.first + 1]), tensors[t]), `tensor ${t} packed`).toBe(true);
        }
        for (const t of tensors) t.fill(NaN);
        buckets.forEach((b, k) => unpack(b, packed[k], tensors));
        tensors.forEach((t, i) => expect(same(t, copies[i]), `tensor ${i} unpacked`).toBe(true));
      }
    }
  });

  it('rejects tensors that do not match the plan', () => {
    const [b] = planBuckets([3, 4]);
    expect(() => pack(b, [new Float32Array(3)])).toThrow(expect.objectContaining({ code: 'SLFER_INVALID_ARGUMENT' }));
    expect(() => pack(b, [new Float32Array(3), new Float32Array(5)])).toThrow(/tensor 1/);
    expect(() => unpack(b, new Float32Array(6), [new Float32Array(3), new Float32Array(4)])).toThrow(/flat buffer/);
    expect(() => planBuckets([1, -1])).toThrow(/tensor 1 size/);
  });
});
