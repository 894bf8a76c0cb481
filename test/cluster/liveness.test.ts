import { describe, expect, it } from 'vitest';
import { Liveness } from '../../cluster/liveness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Liveness: which ranks still beat', () => {
  it('names a rank that falls silent, and not one that beats', async () => {
    const silent: number[] = [];
    const l = new Liveness(2, 300, (rank) => silent.push(rank), 50);
    l.start();
    const beating = setInterval(() => l.beat(0), 50);
    const t0 = Date.now();
    while (!silent.includes(1) && Date.now() - t0 < 3000) await sleep(20);
    clearInterval(beating);
    l.stop();
    expect(silent).toContain(1);
    expect(silent).not.toContain(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
  });

  it("does not blame the ranks when this process's own event loop was blocked (their beats could not be read)", async () => {
    const silent: number[] = [];
    const l = new Liveness(2, 300, (rank) => silent.push(rank), 50);
    l.start();
    // A long synchronous engine call on this thread: nothing is received meanwhile.
    const until = Date.now() + 800;
    while (Date.now() < until);
    // The first check after the stall restarts the clock; beats resume at once.
    const beating = setInterval(() => (l.beat(0), l.beat(1)), 50);
    await sleep(500);
    clearInterval(beating);
    l.stop();
    expect(silent).toEqual([]);
  });
});
