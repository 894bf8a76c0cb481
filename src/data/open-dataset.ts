import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config.js';
import { errors } from '../errors.js';
import { readRafDb } from './rafdb.js';
import { readSfew } from './sfew.js';
import { synthesize } from './synth/synthesize.js';
import type { DatasetSplits } from './types.js';

/** Where generated data is cached unless data.root says otherwise. */
export function cacheDir(): string {
  return resolve(process.env.SLFER_CACHE_DIR ?? join(process.cwd(), '.cache', 'slfer-dist'));
}

/** The folder a synthetic config lives in: one per generator setting, so settings never mix. */
export function syntheticRoot(data: Config['data']): string {
  const s = data.synthetic;
  return data.root ? resolve(data.root) : join(cacheDir(), `synthetic-v1-train${s.train}-test${s.test}-px${s.size}-seed${s.seed}`);
}

/**
 * Opens the configured dataset. The synthetic set is generated on first use (written atomically,
 * so an interrupted generation is redone, never half-used) and then read through the RAF-DB reader,
 * the same path real RAF-DB takes.
 */
export async function openDataset(data: Config['data'], log: (line: string) => void = () => {}): Promise<DatasetSplits> {
  switch (data.dataset) {
    case 'rafdb':
      return readRafDb(requireRoot(data));
    case 'sfew':
      return readSfew(requireRoot(data));
    case 'synthetic': {
      const root = syntheticRoot(data);
      if (!existsSync(join(root, 'synth.json'))) {
        const s = data.synthetic;
        log(`generating the synthetic dataset (${s.train} train + ${s.test} test faces, ${s.size}px, seed ${s.seed}) in ${root}`);
        const t0 = Date.now();
        await synthesize({ out: root, train: s.train, test: s.test, size: s.size, seed: s.seed }).catch((e: unknown) => {
          // Another process of the run (a rank on this machine) finished the same set first: it is
          // the same set (same settings, same seed), so use theirs.
          if (!existsSync(join(root, 'synth.json'))) throw e;
        });
        log(`generated in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      }
      return { ...readRafDb(root), name: 'synthetic' };
    }
  }
}

function requireRoot(data: Config['data']): string {
  if (!data.root) throw errors.configInvalid('config', 'data.root', `is required for dataset "${data.dataset}": pass --data <folder>`);
  return resolve(data.root);
}
