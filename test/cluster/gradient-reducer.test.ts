import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ring } from '../../cluster/collective/ring.js';
import { RingGradientReducer } from '../../cluster/gradient-reducer.js';

// DDP's gradient averaging as the workers run it: two ranks' gradient tensors, fused into several
// buckets (a tiny bucket size forces more than one), averaged with each rank weighted by the
// samples it used. Both ranks live in this process, wired to each other over real sockets.
const SHAPES = [[3, 4], [5], [7, 2, 2], [1]];
const sizes = SHAPES.map((s) => s.reduce((a, b) => a * b, 1));
let rings: Ring[];

beforeAll(async () => {
  rings = [0, 1].map((rank) => new Ring({ rank, worldSize: 2, transport: 'tcp', timeoutMs: 10_000 }));
  const endpoints = await Promise.all(rings.map((r) => r.bind()));
  await Promise.all(rings.map((r) => r.connect(endpoints)));
});
afterAll(async () => {
  await Promise.all(rings.map((r) => r.close()));
});

const values = (rank: number, t: number) => Float32Array.from({ length: sizes[t] }, (_, i) => (rank + 1) * (i + 1) * (t % 2 ? -0.5 : 1.25));

describe.each(['wasm', 'cpu'])('RingGradientReducer on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
    await tf.ready();
  });

  for (const [b0, b1] of [[8, 8], [6, 2], [4, 0]]) {
    it(`gives both ranks the sample-weighted mean, batches ${b0} and ${b1}, and frees the gradients it was given`, async () => {
      const batches = [b0, b1];
      const reducers = rings.map((r) => new RingGradientReducer(r, SHAPES, 64));
      const before = tf.memory().numTensors;
      // A rank with no samples contributes a zero gradient (and weight 0).
      const grads = [0, 1].map((rank) => SHAPES.map((s, t) => tf.tensor(batches[rank] ? values(rank, t) : new Float32Array(sizes[t]), s)));
      const reduced = await Promise.all([0, 1].map((rank) => reducers[rank].reduce(grads[rank], batches[rank])));
      expect(reduced.map((r) => r.samples)).toEqual([b0 + b1, b0 + b1]);
      const out = reduced.map((r) => r.grads);
      expect(grads.flat().every((g) => g.isDisposed)).toBe(true);
      expect(tf.memory().numTensors).toBe(before + 2 * SHAPES.length);
      for (let t = 0; t < SHAPES.length; t++) {
        const want = values(0, t).map((v, i) => (b0 * v + b1 * values(1, t)[i]) / (b0 + b1));
        const [r0, r1] = [out[0][t].dataSync(), out[1][t].dataSync()];
        expect(out[0][t].shape).toEqual(SHAPES[t]);
        expect(Buffer.from(r0.buffer, r0.byteOffset, r0.byteLength).equals(Buffer.from(r1.buffer, r1.byteOffset, r1.byteLength))).toBe(true);
        for (let i = 0; i < want.length; i++) expect(r0[i]).toBeCloseTo(want[i], 5);
      }
      // The buckets are reused: results handed out before must not change with the next reduce.
      const kept = Float32Array.from(out[0][0].dataSync());
      const again = (await Promise.all([0, 1].map((rank) => reducers[rank].reduce(SHAPES.map((s) => tf.fill(s, 100 + rank)), 1)))).map((r) => r.grads);
      expect(Float32Array.from(out[0][0].dataSync())).toEqual(kept);
      tf.dispose([...out.flat(), ...again.flat()]);
    });
  }
});
