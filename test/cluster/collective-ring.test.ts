import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHalf, toHalf } from '../../cluster/collective/fp16.js';
import { autoChunkElems, Ring, segmentBounds } from '../../cluster/collective/ring.js';

/** N rings in this process, wired to each other (the rendezvous is done by hand). */
async function makeRings(worldSize: number, transport: 'tcp' | 'ipc', chunkBytes?: number): Promise<Ring[]> {
  const rings = Array.from({ length: worldSize }, (_, rank) => new Ring({ rank, worldSize, transport, chunkBytes, timeoutMs: 10_000 }));
  const endpoints = await Promise.all(rings.map((r) => r.bind()));
  await Promise.all(rings.map((r) => r.connect(endpoints)));
  return rings;
}

/** Small integers: every partial sum is exact, so the ring must equal the plain sum exactly. */
const integerData = (rank: number, n: number) => Float32Array.from({ length: n }, (_, i) => ((i * 7 + rank * 13) % 201) - 100);

function randomData(seed: number, n: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 8;
  });
}

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Bitwise equality, reporting the first differing element (vitest's deep equality is slow on big arrays). */
function expectSame(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  if (bytes(got).equals(bytes(want))) return;
  const i = got.findIndex((v, k) => !Object.is(v, want[k]));
  expect.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
}
const expectIdentical = (bufs: Float32Array[]) => bufs.forEach((b, r) => expectSame(b, bufs[0], `rank ${r} vs rank 0`));

// Lengths: empty, one element, not divisible by any N here, and many chunks of 16 KiB (chunkBytes below).
const LENGTHS = [0, 1, 7, 300_001];

describe.each(['tcp', 'ipc'] as const)('Ring over %s', (transport) => {
  describe.each([1, 2, 3, 4])('with %i ranks', (worldSize) => {
    let rings: Ring[];
    beforeAll(async () => {
      rings = await makeRings(worldSize, transport, 16 * 1024);
    });
    afterAll(async () => {
      await Promise.all(rings.map((r) => r.close()));
    });

    it.each(LENGTHS)('all-reduce of %i elements equals the plain sum on every rank', async (n) => {
      const bufs = rings.map((_, r) => integerData(r, n));
      const expected = new Float32Array(n);
      for (let r = 0; r < worldSize; r++) integerData(r, n).forEach((v, i) => (expected[i] += v));
      await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r])));
      bufs.forEach((b, r) => expectSame(b, expected, `rank ${r}`));
    });

    it('gives bitwise identical results for inexact float sums', async () => {
      const n = 50_003;
      const bufs = rings.map((_, r) => randomData(r + 1, n));
      const expected = new Float64Array(n);
      for (let r = 0; r < worldSize; r++) randomData(r + 1, n).forEach((v, i) => (expected[i] += v));
      await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r])));
      expectIdentical(bufs);
      for (let i = 0; i < n; i += 997) expect(bufs[0][i]).toBeCloseTo(expected[i], 4);
    });

    it('averages when asked', async () => {
      const n = 1001;
      const bufs = rings.map((_, r) => integerData(r, n));
      await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r], { average: true })));
      expectIdentical(bufs);
      const sums = new Float64Array(n);
      for (let r = 0; r < worldSize; r++) integerData(r, n).forEach((v, i) => (sums[i] += v));
      expectSame(bufs[0], Float32Array.from(sums, (s) => s / worldSize), 'average');
    });

    it('compresses to fp16: within half precision of the sum, identical on all ranks', async () => {
      const n = 40_000;
      const bufs = rings.map((_, r) => randomData(100 + r, n));
      const exact = new Float64Array(n);
      const magnitude = new Float64Array(n); // sum of |x|: bounds every partial sum that gets rounded
      for (let r = 0; r < worldSize; r++) randomData(100 + r, n).forEach((v, i) => ((exact[i] += v), (magnitude[i] += Math.abs(v))));
      await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r], { compression: 'fp16' })));
      expectIdentical(bufs);
      for (let i = 0; i < n; i++) {
        const got = bufs[0][i];
        if (worldSize > 1) expect(fromHalf(toHalf(got))).toBe(got); // the result is a half value
        // N-1 partial sums and the final sum are each rounded to half: at most half an ulp
        // (2^-11 relative, or 2^-25 absolute among subnormals) of something no bigger than sum |x|
        const tolerance = worldSize * (2 ** -11 * magnitude[i] + 2 ** -25);
        expect(Math.abs(got - exact[i]), `element ${i}`).toBeLessThanOrEqual(worldSize === 1 ? 0 : tolerance);
      }
    });

    it('broadcasts from a non-zero root', async () => {
      const root = worldSize - 1;
      const n = 70_001;
      const bufs = rings.map((_, r) => (r === root ? randomData(7, n) : new Float32Array(n).fill(-1)));
      await Promise.all(rings.map((ring, r) => ring.broadcast(bufs[r], root)));
      const want = randomData(7, n);
      bufs.forEach((b, r) => expectSame(b, want, `rank ${r}`));
    });

    it('runs many collectives back to back on the same buffers', async () => {
      const bufs = rings.map(() => new Float32Array(20_000).fill(1));
      for (let k = 0; k < 5; k++) await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r])));
      for (const b of bufs) expect(b.every((v) => v === worldSize ** 5)).toBe(true);
    });
  });
});

describe('Ring wiring', () => {
  it('splits a buffer into N segments that differ by at most one element', () => {
    expect(segmentBounds(7, 3)).toEqual([0, 3, 5, 7]);
    expect(segmentBounds(2, 4)).toEqual([0, 1, 2, 2, 2]);
    expect(segmentBounds(0, 2)).toEqual([0, 0, 0]);
  });

  it('picks a chunk of about a sixteenth of a segment, between 256 KiB and 4 MiB', () => {
    const kib = (elems: number) => (elems * 4) / 1024;
    expect(kib(autoChunkElems(13_721_871, 2))).toBe(1664); // the SLFER gradient, 2 ranks: 1.6 MiB
    expect(kib(autoChunkElems(13_721_871, 4))).toBe(832);
    expect(kib(autoChunkElems(1000, 2))).toBe(256); // small buffers: one chunk
    expect(kib(autoChunkElems(1e9, 2))).toBe(4096);
  });

  it('with the default chunk size, all-reduces a buffer of many MB correctly', async () => {
    const rings = await makeRings(2, 'ipc');
    try {
      const n = 3_000_000;
      const bufs = rings.map((_, r) => integerData(r, n));
      await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r])));
      const other = integerData(1, n);
      const expected = integerData(0, n).map((v, i) => v + other[i]);
      bufs.forEach((b, r) => expectSame(b, expected, `rank ${r}`));
    } finally {
      await Promise.all(rings.map((r) => r.close()));
    }
  });

  it('refuses collectives before connect and after close, with typed errors', async () => {
    const ring = new Ring({ rank: 0, worldSize: 2, transport: 'tcp' });
    await expect(ring.allReduce(new Float32Array(4))).rejects.toMatchObject({ code: 'SLFER_CLUSTER_RING_UNUSABLE' });
    await ring.bind();
    await ring.close();
    await expect(ring.allReduce(new Float32Array(4))).rejects.toMatchObject({ code: 'SLFER_CLUSTER_RING_UNUSABLE' });
    expect(() => new Ring({ rank: 2, worldSize: 2, transport: 'tcp' })).toThrow(expect.objectContaining({ code: 'SLFER_INVALID_ARGUMENT' }));
  });

  it('binds to an IPC socket file in a given folder and removes it on close', async () => {
    const { mkdtempSync, readdirSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'ring-test-'));
    try {
      const ring = new Ring({ rank: 0, worldSize: 1, transport: 'ipc', ipcDir: dir });
      const endpoint = await ring.bind();
      expect(endpoint.startsWith(`ipc://${dir}/`)).toBe(true);
      expect(readdirSync(dir)).toHaveLength(1);
      await ring.close();
      expect(readdirSync(dir)).toHaveLength(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('detects ranks that call different collectives', async () => {
    const rings = await makeRings(2, 'tcp');
    try {
      const results = await Promise.allSettled([rings[0].allReduce(new Float32Array(10)), rings[1].allReduce(new Float32Array(12))]);
      expect(results.some((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'SLFER_CLUSTER_PROTOCOL')).toBe(true);
    } finally {
      await Promise.all(rings.map((r) => r.close()));
    }
  });
});
