import { describe, expect, it } from 'vitest';
import { Ring } from '../../cluster/collective/ring.js';

async function makeRings(worldSize: number, timeoutMs: number): Promise<Ring[]> {
  const rings = Array.from({ length: worldSize }, (_, rank) => new Ring({ rank, worldSize, transport: 'tcp', timeoutMs, chunkBytes: 64 * 1024 }));
  const endpoints = await Promise.all(rings.map((r) => r.bind()));
  await Promise.all(rings.map((r) => r.connect(endpoints)));
  return rings;
}

describe('a peer that goes away', () => {
  it('makes the others reject within the timeout, naming the rank they wait on (or, next to it, at once: its connection dropped)', async () => {
    const timeoutMs = 500;
    const rings = await makeRings(3, timeoutMs);
    const n = 2_000_000; // many chunks: rank 2 leaves while data is still flowing
    const t0 = Date.now();
    const running = rings.map((ring) => ring.allReduce(new Float32Array(n).fill(1)).then(() => null, (e: unknown) => e as { code?: string; message: string }));
    await new Promise((r) => setTimeout(r, 5));
    await rings[2].close();
    const [e0, e1, e2] = await Promise.all(running);
    const elapsed = Date.now() - t0;
    expect(e2).toMatchObject({ code: 'SLFER_CLUSTER_RING_UNUSABLE' }); // closed under its own feet
    expect(e0).toMatchObject({ code: 'SLFER_CLUSTER_PEER_TIMEOUT', message: expect.stringContaining('from rank 2 within 500 ms') });
    // Rank 1 sends to rank 2: its connection dropping (a ZMTP heartbeat would say the same of a dead machine) ends it now.
    expect(e1).toMatchObject({ code: 'SLFER_CLUSTER_RING_UNUSABLE', message: expect.stringContaining('the connection to rank 2 was lost') });
    expect(elapsed).toBeLessThan(timeoutMs * 4);
    // the ring is now unusable, and says so
    await expect(rings[0].allReduce(new Float32Array(4))).rejects.toMatchObject({ code: 'SLFER_CLUSTER_RING_UNUSABLE' });
    await Promise.all(rings.map((r) => r.close()));
  });

  it('a rank that never joins a collective times out its neighbour', async () => {
    const rings = await makeRings(2, 300);
    const t0 = Date.now();
    await expect(rings[0].allReduce(new Float32Array(1000))).rejects.toMatchObject({
      code: 'SLFER_CLUSTER_PEER_TIMEOUT',
      message: expect.stringContaining('rank 0: no data from rank 1 within 300 ms'),
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    await Promise.all(rings.map((r) => r.close()));
  });
});
