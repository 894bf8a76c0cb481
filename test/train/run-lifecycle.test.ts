import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch } from '../../cluster/coordinator.js';
import { train } from '../../src/train/trainer.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';

// train and launch share one run lifecycle (src/train/run-lifecycle.ts, epoch-metrics.ts): the
// files they leave have the same fields, so tools read either run the same way.
let data: Awaited<ReturnType<typeof syntheticDataset>>;
beforeAll(async () => {
  data = await syntheticDataset({ train: 16, test: 4, size: 32 });
});
afterAll(() => data.cleanup());

const keysOf = (o: object): string[] => Object.keys(o).sort();
const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe.each(['proposed', 'baseline'] as const)('metrics.jsonl and report.json from train and launch (%s)', (variant) => {
  let one: string;
  let two: string;
  beforeAll(async () => {
    const config = tinyConfig(data.root, 32, { epochs: 1, batchSize: 4, variant });
    one = (await train({ config, out: join(data.base, `train-${variant}`) })).runDir;
    two = (await launch({ config, workers: 2, out: join(data.base, `launch-${variant}`) })).runDir;
  });

  it('have the same fields, down to the loss terms the variant has', () => {
    const [a] = lines(join(one, 'metrics.jsonl'));
    const [b] = lines(join(two, 'metrics.jsonl'));
    expect(keysOf(a)).toEqual(keysOf(b));
    expect(keysOf(a.trainLossParts as object)).toEqual(keysOf(b.trainLossParts as object));
    expect(keysOf(a.trainLossParts as object)).toEqual(variant === 'baseline' ? ['expression'] : ['components', 'expression', 'segmentation']);
    expect([a.workers, b.workers]).toEqual([1, 2]);
    const ra = JSON.parse(readFileSync(join(one, 'report.json'), 'utf8')) as Record<string, unknown>;
    const rb = JSON.parse(readFileSync(join(two, 'report.json'), 'utf8')) as Record<string, unknown>;
    expect(keysOf(ra)).toEqual(keysOf(rb));
    expect(ra.dataset).toBe(rb.dataset);
  });
});
