/**
 * What to do with samples that have no mask when a task needs masks (ST or CT on): by default stop
 * and say which file to create, since silently training on fewer images changes the experiment;
 * with skipMissing, drop them and list them so the run's summary shows how many were left out.
 */
import { errors } from '../errors.js';
import type { DatasetSplits, Sample, SkippedFile } from './types.js';

export interface MaskPolicy {
  /** Masks are needed: the ST or CT head is trained. */
  required: boolean;
  /** Drop samples without a mask instead of failing. */
  skipMissing: boolean;
}

export function applyMaskPolicy(splits: DatasetSplits, { required, skipMissing }: MaskPolicy): { splits: DatasetSplits; skipped: SkippedFile[] } {
  if (!required) return { splits, skipped: [] };
  const skipped: SkippedFile[] = [];
  const keep = (samples: Sample[]): Sample[] =>
    samples.filter((s) => {
      if (s.maskPath !== null) return true;
      if (!skipMissing) throw errors.maskMissing(s.expectedMaskPath, s.imagePath);
      skipped.push({ path: s.imagePath, reason: 'no mask' });
      return false;
    });
  return { splits: { ...splits, train: keep(splits.train), test: keep(splits.test) }, skipped };
}
