import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlferError } from '../../src/errors.js';
import { train } from '../../src/train/trainer.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';

let data: Awaited<ReturnType<typeof syntheticDataset>>;

beforeAll(async () => {
  data = await syntheticDataset({ train: 56, test: 21, size: 40 });
});
afterAll(() => data.cleanup());

const finalTensors = (runDir: string) => {
  const latest = JSON.parse(readFileSync(join(runDir, 'checkpoints', 'latest.json'), 'utf8')) as { path: string };
  return readFileSync(join(runDir, 'checkpoints', latest.path, 'tensors.bin'));
};

describe('determinism and resume', () => {
  it('stopping after an epoch and resuming gives bitwise the same final weights as one run', async () => {
    const config = tinyConfig(data.root, 40, { epochs: 3 });
    const whole = await train({ config, out: join(data.base, 'whole') });

    const controller = new AbortController();
    const stopped = await train({
      config,
      out: join(data.base, 'stopped'),
      signal: controller.signal,
      events: { epochEnd: (m) => m.epoch === 1 && controller.abort() },
    }).catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(SlferError);
    expect((stopped as SlferError).code).toBe('SLFER_ABORTED');
    // Only the completed epoch was checkpointed, and nothing half-written is left.
    expect(readdirSync(join(data.base, 'stopped', 'checkpoints')).sort()).toEqual(['best.json', 'epoch-0001', 'latest.json']);

    const resumed = await train({ resume: join(data.base, 'stopped') });
    expect(resumed.runDir).toBe(join(data.base, 'stopped'));
    expect(finalTensors(resumed.runDir).equals(finalTensors(whole.runDir))).toBe(true);
    // metrics.jsonl has each epoch once, as the uninterrupted run.
    const epochs = readFileSync(join(resumed.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { epoch: number }).epoch);
    expect(epochs).toEqual([1, 2, 3]);
    expect(resumed.report.accuracy).toBe(whole.report.accuracy);
  });

  it('writes the documented outputs of a run', async () => {
    const dir = join(data.base, 'whole');
    for (const f of ['config.json', 'metrics.jsonl', 'report.json', 'confusion-matrix.png', 'confusion-matrix.svg']) expect(existsSync(join(dir, f))).toBe(true);
    const line = JSON.parse(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n')[0]) as Record<string, unknown>;
    for (const k of ['epoch', 'trainLoss', 'testAccuracy', 'imagesPerSec', 'backend']) expect(line).toHaveProperty(k);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Record<string, unknown>;
    for (const k of ['accuracy', 'meanClassAccuracy', 'perClassAccuracy', 'confusionMatrix', 'classNames', 'variant', 'backend']) expect(report).toHaveProperty(k);
    expect(report.backend).toBe('wasm');
    expect((report.confusionMatrix as number[][]).flat().reduce((a, b) => a + b, 0)).toBe(21);
    expect(readFileSync(join(dir, 'confusion-matrix.png')).subarray(1, 4).toString()).toBe('PNG');
  });

  it('refuses to start a new run in a folder that holds one', async () => {
    const err = await train({ config: tinyConfig(data.root, 40), out: join(data.base, 'whole') }).catch((e: unknown) => e);
    expect((err as SlferError).code).toBe('SLFER_INVALID_ARGUMENT');
    expect((err as SlferError).hint).toContain('--resume');
  });
});
