/**
 * One metrics.jsonl line from an epoch's per-rank training statistics and the test evaluation: the
 * same fields whether one process trained (one rank) or `launch` did (every rank's report).
 */
import type { EvalResult } from './metrics.js';
import type { EpochMetrics } from './run-files.js';

/** What one rank did in an epoch. */
export interface RankEpoch {
  rank: number;
  images: number;
  seconds: number;
  computeMs: number;
  reduceMs: number;
  waitMs: number;
  lossSums: { total: number; expression: number; segmentation: number; components: number };
  /** Files skipped while training and while evaluating this rank's share of the test split. */
  skipped: number;
}

export function epochMetrics(epoch: number, ranks: RankEpoch[], ev: EvalResult, lr: number, backend: string, parts: { st: boolean; ct: boolean }): EpochMetrics {
  const images = ranks.reduce((a, r) => a + r.images, 0);
  // A synchronous step is as fast as its slowest rank: the epoch took the longest rank's time.
  const slowest = ranks.reduce((a, b) => (b.seconds > a.seconds ? b : a));
  const per = (k: keyof RankEpoch['lossSums']) => ranks.reduce((a, r) => a + r.lossSums[k], 0) / Math.max(1, images);
  return {
    epoch: epoch + 1,
    trainLoss: per('total'),
    trainLossParts: {
      expression: per('expression'),
      ...(parts.st ? { segmentation: per('segmentation') } : {}),
      ...(parts.ct ? { components: per('components') } : {}),
    },
    testAccuracy: ev.accuracy,
    meanClassAccuracy: ev.meanClassAccuracy,
    lr,
    imagesPerSec: images / slowest.seconds,
    epochSeconds: slowest.seconds,
    dataWaitSeconds: Math.max(...ranks.map((r) => r.waitMs / 1000)),
    backend,
    skipped: ranks.reduce((a, r) => a + r.skipped, 0),
    workers: ranks.length,
    computeSeconds: Math.max(...ranks.map((r) => r.computeMs / 1000)),
    allReduceSeconds: Math.max(...ranks.map((r) => r.reduceMs / 1000)),
    slowestRank: slowest.rank,
  };
}
