import { afterEach, describe, expect, it } from 'vitest';
import { rendezvous, RendezvousServer } from '../../cluster/collective/rendezvous.js';

const servers: RendezvousServer[] = [];
async function server(worldSize: number, timeoutMs = 10_000): Promise<RendezvousServer> {
  const s = new RendezvousServer({ worldSize, timeoutMs });
  servers.push(s);
  await s.bind();
  return s;
}
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

describe('rendezvous', () => {
  it('gives every rank all endpoints in rank order, whatever order they register in', async () => {
    const s = await server(3);
    expect(s.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    const gathered = s.waitForRanks();
    const answers = await Promise.all([2, 0, 1].map((rank) => rendezvous(s.endpoint, { rank, worldSize: 3, endpoint: `ep-${rank}`, timeoutMs: 5000 })));
    for (const a of answers) expect(a).toEqual(['ep-0', 'ep-1', 'ep-2']);
    const regs = await gathered;
    expect(regs.map((r) => [r.rank, r.endpoint, r.pid])).toEqual([0, 1, 2].map((r) => [r, `ep-${r}`, process.pid]));
    expect(regs.every((r) => r.routingId.length > 0 && typeof r.host === 'string')).toBe(true);
  });

  it('rejects a duplicate rank, at the server and at both workers', async () => {
    const s = await server(2);
    const gathered = s.waitForRanks();
    gathered.catch(() => {});
    const first = rendezvous(s.endpoint, { rank: 0, worldSize: 2, endpoint: 'a', timeoutMs: 5000 });
    first.catch(() => {});
    await new Promise((r) => setTimeout(r, 100)); // let the first one register first
    const second = rendezvous(s.endpoint, { rank: 0, worldSize: 2, endpoint: 'b', timeoutMs: 5000 });
    await expect(second).rejects.toMatchObject({ code: 'SLFER_CLUSTER_RANK_INVALID', message: expect.stringContaining('rank 0 registered twice') });
    await expect(gathered).rejects.toMatchObject({ code: 'SLFER_CLUSTER_RANK_INVALID' });
    await expect(first).rejects.toMatchObject({ code: 'SLFER_CLUSTER_RANK_INVALID' });
  });

  it('rejects a rank out of range and a different worldSize', async () => {
    const s = await server(2);
    s.waitForRanks().catch(() => {});
    await expect(rendezvous(s.endpoint, { rank: 2, worldSize: 2, endpoint: 'x', timeoutMs: 5000 })).rejects.toMatchObject({
      code: 'SLFER_CLUSTER_RANK_INVALID',
      message: expect.stringContaining('out of range'),
    });
    const s2 = await server(2);
    s2.waitForRanks().catch(() => {});
    await expect(rendezvous(s2.endpoint, { rank: 0, worldSize: 3, endpoint: 'x', timeoutMs: 5000 })).rejects.toMatchObject({
      code: 'SLFER_CLUSTER_RANK_INVALID',
      message: expect.stringContaining('worldSize 3'),
    });
  });

  it('times out naming the ranks that never registered, and tells the ones that did', async () => {
    const s = await server(4, 400);
    const gathered = s.waitForRanks();
    gathered.catch(() => {});
    const workers = [0, 2].map((rank) => rendezvous(s.endpoint, { rank, worldSize: 4, endpoint: `ep-${rank}`, timeoutMs: 5000 }));
    const t0 = Date.now();
    await expect(gathered).rejects.toMatchObject({ code: 'SLFER_CLUSTER_RENDEZVOUS_TIMEOUT', message: expect.stringContaining('ranks 1, 3 of 4 never registered') });
    expect(Date.now() - t0).toBeLessThan(2000);
    for (const w of workers) await expect(w).rejects.toMatchObject({ code: 'SLFER_CLUSTER_RENDEZVOUS_TIMEOUT' });
  });

  it('a worker times out when no coordinator answers', async () => {
    await expect(rendezvous('tcp://127.0.0.1:1', { rank: 0, worldSize: 1, endpoint: 'x', timeoutMs: 300 })).rejects.toMatchObject({
      code: 'SLFER_CLUSTER_RENDEZVOUS_TIMEOUT',
      message: expect.stringContaining('did not answer'),
    });
  });

  it('leaves the Router usable as a control channel afterwards', async () => {
    const { Dealer } = await import('zeromq');
    const { pack, unpack } = await import('msgpackr');
    const s = await server(1);
    const dealer = new Dealer({ linger: 0 });
    dealer.connect(s.endpoint);
    try {
      const [endpoints, regs] = await Promise.all([rendezvous(s.endpoint, { rank: 0, worldSize: 1, endpoint: 'e', dealer }), s.waitForRanks()]);
      expect(endpoints).toEqual(['e']);
      await s.router.send([regs[0].routingId, pack({ type: 'ping' })]);
      const [reply] = await dealer.receive();
      expect(unpack(reply)).toEqual({ type: 'ping' });
    } finally {
      dealer.close();
    }
  });
});
