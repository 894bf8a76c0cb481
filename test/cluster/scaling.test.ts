import { existsSync, readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { benchScaling } from '../../cluster/bench/scaling.js';

const out = mkdtempSync(join(tmpdir(), 'slfer-scaling-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('bench scaling', () => {
  it('measures the real training step per worker count and writes JSON and a plot', async () => {
    const r = await benchScaling({ workers: [1, 2], backend: 'wasm', variant: 'proposed', width: 0.125, size: 32, batch: 2, steps: 2, warmup: 1, transport: 'ipc', out });
    expect(r.backend).toBe('wasm');
    expect(r.rows.map((x) => x.workers)).toEqual([1, 2]);
    expect(r.rows[0].efficiency).toBe(1);
    expect(r.rows[0].allReduceMsPerStep).toBeLessThan(1);
    expect(r.rows[1].allReduceMsPerStep).toBeGreaterThan(0);
    for (const x of r.rows) expect(x.imagesPerSec).toBeGreaterThan(0);
    expect(JSON.parse(readFileSync(join(out, 'scaling.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(r)));
    expect(existsSync(join(out, 'scaling.png'))).toBe(true);
  });
});
