import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { renderChart } from '../plot/render.js';
import { confusionMatrixSpec } from './confusion-plot.js';
import type { EvalResult } from './metrics.js';

/**
 * The files a run folder holds, by name (other tools read these; keep the names):
 * config.json, metrics.jsonl, checkpoints/, report.json, confusion-matrix.{svg,png}; curves.{svg,png}
 * (src/plot/curves.ts) and, from `plot --tsne`, tsne.{svg,png,json} (src/plot/tsne.ts).
 */
export const RUN_FILES = {
  config: 'config.json',
  metrics: 'metrics.jsonl',
  checkpoints: 'checkpoints',
  report: 'report.json',
  confusionSvg: 'confusion-matrix.svg',
  confusionPng: 'confusion-matrix.png',
} as const;

/** One line of metrics.jsonl: one per epoch. */
export interface EpochMetrics {
  epoch: number;
  trainLoss: number;
  trainLossParts: { expression: number; segmentation?: number; components?: number };
  testAccuracy: number;
  meanClassAccuracy: number;
  lr: number;
  imagesPerSec: number;
  epochSeconds: number;
  /** Seconds the engine waited for decoded batches. */
  dataWaitSeconds: number;
  backend: string;
  skipped: number;
  /** Processes that trained (1 for `train`), and the slowest rank's time split. */
  workers: number;
  computeSeconds: number;
  allReduceSeconds: number;
  slowestRank: number;
}

/** report.json: the final test evaluation (count = test images used) and what produced it. */
export interface Report extends EvalResult {
  variant: string;
  backend: string;
  dataset: string;
  epochs: number;
  trainImagesPerSec: number;
  elapsedSeconds: number;
  checkpoint: string;
  skipped: { path: string; reason: string }[];
}

/**
 * Rewrites metrics.jsonl with the lines of earlier epochs plus this one (atomically): a resumed run
 * replaces, never duplicates, the epochs it redoes.
 */
export function appendMetrics(runDir: string, m: EpochMetrics): void {
  const file = join(runDir, RUN_FILES.metrics);
  const earlier = existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() && (JSON.parse(l) as EpochMetrics).epoch < m.epoch)
    : [];
  writeFileAtomic(file, [...earlier, JSON.stringify(m)].join('\n') + '\n');
}

export function readMetrics(runDir: string): EpochMetrics[] {
  const file = join(runDir, RUN_FILES.metrics);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as EpochMetrics);
}

export async function writeReport(dir: string, report: Report, reportName: string = RUN_FILES.report): Promise<void> {
  writeFileAtomic(join(dir, reportName), JSON.stringify(report, null, 2) + '\n');
  const chart = await renderChart(confusionMatrixSpec(report, `${report.variant} on ${report.dataset}: accuracy ${(report.accuracy * 100).toFixed(2)}%`));
  writeFileAtomic(join(dir, RUN_FILES.confusionSvg), chart.svg);
  writeFileAtomic(join(dir, RUN_FILES.confusionPng), chart.png);
}

export function writeRunConfig(dir: string, config: unknown): void {
  writeFileAtomic(join(dir, RUN_FILES.config), JSON.stringify(config, null, 2) + '\n');
}
