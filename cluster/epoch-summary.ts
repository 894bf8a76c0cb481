/**
 * What the coordinator makes of an epoch's reports from every rank: the weight-checksum gate (all
 * ranks must hold the same weights), the test evaluation summed over the ranks' shares, the files
 * they skipped, each rank's time split, and the metrics.jsonl line (the same builder as `train`'s).
 */
import type { SkippedFile } from '../src/data/types.js';
import { errors } from '../src/errors.js';
import { epochMetrics } from '../src/train/epoch-metrics.js';
import { ConfusionMatrix, type EvalResult } from '../src/train/metrics.js';
import type { EpochMetrics } from '../src/train/run-files.js';
import type { EpochReport } from './protocol.js';

export interface RankTiming {
  epoch: number;
  rank: number;
  seconds: number;
  computeSeconds: number;
  allReduceSeconds: number;
  dataWaitSeconds: number;
  images: number;
}

export interface EpochSummary {
  metrics: EpochMetrics;
  evaluation: EvalResult;
  skipped: SkippedFile[];
  timings: RankTiming[];
  checksum: string;
}

/** `done`: one report per rank, in rank order. Throws SLFER_CLUSTER_DIVERGED when the ranks' weights differ. */
export function summariseEpoch(epoch: number, done: (EpochReport & { rank: number })[], lr: number, backend: string, parts: { st: boolean; ct: boolean }): EpochSummary {
  const sums = new Set(done.map((d) => d.checksum));
  if (sums.size !== 1) throw errors.clusterDiverged(epoch + 1, done.map((d) => `rank ${d.rank} ${d.checksum.slice(0, 12)}`).join(', '));
  const cm = new ConfusionMatrix();
  for (const d of done) cm.counts.forEach((row, i) => row.forEach((_, j) => (row[j] += d.confusion[i][j])));
  const evaluation = cm.result();
  const ranks = done.map((d) => ({ ...d, skipped: d.skipped.length + d.evalSkipped.length }));
  return {
    metrics: epochMetrics(epoch, ranks, evaluation, lr, backend, parts),
    evaluation,
    skipped: done.flatMap((d) => [...d.skipped, ...d.evalSkipped]),
    timings: done.map((d) => ({
      epoch: epoch + 1,
      rank: d.rank,
      seconds: d.seconds,
      computeSeconds: d.computeMs / 1000,
      allReduceSeconds: d.reduceMs / 1000,
      dataWaitSeconds: d.waitMs / 1000,
      images: d.images,
    })),
    checksum: done[0].checksum,
  };
}
