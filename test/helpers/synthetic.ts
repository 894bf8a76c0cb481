import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { synthesize } from '../../src/data/synth/synthesize.js';
import type { ConfigInput } from '../../src/config.js';

/** A small synthetic dataset on disk (real JPEGs and PNG masks in RAF-DB layout) for one test file. */
export async function syntheticDataset(opts: { train: number; test: number; size: number; seed?: number }) {
  const base = mkdtempSync(join(tmpdir(), 'slfer-synth-'));
  const root = join(base, 'data');
  await synthesize({ out: root, train: opts.train, test: opts.test, size: opts.size, seed: opts.seed ?? 0 });
  return { base, root, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

/** A tiny but complete training config over such a dataset. */
export function tinyConfig(root: string, size: number, over: { epochs?: number; variant?: 'baseline' | 'proposed'; batchSize?: number; lr?: number } = {}): ConfigInput {
  return {
    data: { dataset: 'rafdb', root, resize: size, threads: 1 },
    model: { variant: over.variant ?? 'proposed', width: 0.125, inputSize: 32 },
    train: { epochs: over.epochs ?? 2, batchSize: over.batchSize ?? 8, lr: over.lr ?? 3e-3, milestones: [1], seed: 11 },
    engine: { backend: 'wasm' },
  };
}
