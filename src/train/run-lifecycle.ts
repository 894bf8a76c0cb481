/**
 * What every run does around its epochs, whether one process trains (`train`) or a worker group
 * does (`launch`): resolve the config (a resumed run keeps its own), claim the run folder, know where
 * it starts, track the best epoch, and end with report.json. One place, so both leave the same files
 * with the same fields.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { mergeConfig, resolveConfig, type Config, type ConfigInput } from '../config.js';
import type { SkippedFile } from '../data/types.js';
import { errors, isSlferError } from '../errors.js';
import { curvesTitle, writeCurves } from '../plot/curves.js';
import { loadCheckpoint, resolveCheckpoint } from './checkpoint.js';
import type { EvalResult } from './metrics.js';
import { readMetrics, RUN_FILES, writeReport, writeRunConfig, type EpochMetrics, type Report } from './run-files.js';

export interface RunOptions {
  /** Full or partial config (paper defaults fill the rest); an unknown field is an error. */
  config?: ConfigInput;
  /** Run folder; default runs/<timestamp>, or the resumed run's folder. */
  out?: string;
  /**
   * A run folder (its newest checkpoint, mid-epoch included) or checkpoint to continue from;
   * `config` may then only change train.epochs and train.checkpointEvery (which does not change
   * the result). 'auto': continue the run in `out` when it holds a checkpoint, else start it there
   * (what an external launcher's retry needs: the same command line every time).
   */
  resume?: string;
  /**
   * Continue a checkpoint with another number of processes than trained it. The data order follows
   * the world size, so the result is a valid run but not bitwise the one an unchanged run gives.
   */
  allowWorldSizeChange?: boolean;
}

export interface OpenedRun {
  config: Config;
  runDir: string;
  resumed?: ReturnType<typeof loadCheckpoint>;
  /**
   * The first epoch to train (0-based): after the resumed checkpoint's, or the one it was saved in
   * the middle of (resumed.stepInEpoch steps done), which the restored session continues.
   */
  startEpoch: number;
  /** Milliseconds since the epoch, when the run (this attempt) began. */
  started: number;
}

/**
 * Resolves the config, creates the run folder and writes config.json. `adjust` lets the caller fill
 * what depends on how it runs (launch's engine and decoding threads) before the config is recorded.
 */
export function openRun(o: RunOptions, worldSize: number, adjust: (c: Config) => Config = (c) => c): OpenedRun {
  const started = Date.now();
  const resumePath = o.resume === 'auto' ? autoResume(o.out) : o.resume;
  const resumed = resumePath ? loadCheckpoint(resumePath) : undefined;
  // Mid-epoch, each rank's shard position and BN statistics are its own: no other world size can
  // take them over, --allow-world-size-change or not.
  if (resumed?.stepInEpoch !== undefined && (resumed.worldSize ?? 1) !== worldSize) {
    throw errors.checkpointWorldSize(resumed.path, resumed.epoch, resumed.stepInEpoch, resumed.worldSize ?? 1, worldSize);
  }
  if (resumed?.worldSize !== undefined && resumed.worldSize !== worldSize && !o.allowWorldSizeChange) {
    throw errors.invalidArgument(
      '--resume',
      `${resumed.path} was trained by ${resumed.worldSize} process${resumed.worldSize > 1 ? 'es' : ''}, and this run has ${worldSize}`,
      `resume with the same number of workers, or pass --allow-world-size-change (the run continues, but its weights will not be bitwise those of an unchanged run)`,
    );
  }
  const config = adjust(
    resumed
      ? resolveConfig(mergeConfig(resumed.config, { train: { epochs: o.config?.train?.epochs, checkpointEvery: o.config?.train?.checkpointEvery } }), 'resumed config')
      : resolveConfig(o.config ?? {}, 'config'),
  );
  const runDir = resolve(o.out ?? (resumed ? dirname(dirname(resumed.path)) : join('runs', timestamp())));
  // 'auto' with no checkpoint to continue starts the run over: metrics.jsonl may hold the line of
  // an epoch whose checkpoint a kill prevented (the line is written first), which it then replaces.
  if (!resumed && o.resume !== 'auto' && existsSync(join(runDir, RUN_FILES.metrics))) {
    throw errors.invalidArgument('run folder', `${runDir} already holds a run`, 'continue it with --resume, or choose another --out');
  }
  mkdirSync(runDir, { recursive: true });
  writeRunConfig(runDir, config);
  return { config, runDir, resumed, startEpoch: resumed?.epoch ?? 0, started };
}

/** The best test accuracy so far (a resumed run remembers its earlier epochs) and the checkpoints. */
export class RunProgress {
  private best: number;
  lastCheckpoint = '';
  private bestCheckpoint = '';

  /** `startEpoch`: epochs already done, whose metrics.jsonl lines count (a fresh run has none). */
  constructor(runDir: string, startEpoch: number) {
    this.best = Math.max(-1, ...readMetrics(runDir).filter((m) => m.epoch <= startEpoch).map((m) => m.testAccuracy));
  }

  /** Whether this epoch's accuracy is the best yet (it then becomes the best). */
  improves(m: EpochMetrics): boolean {
    if (m.testAccuracy <= this.best) return false;
    this.best = m.testAccuracy;
    return true;
  }

  checkpointed(path: string, best: boolean): void {
    this.lastCheckpoint = path;
    if (best) this.bestCheckpoint = path;
  }

  get bestOrLast(): string {
    return this.bestCheckpoint || this.lastCheckpoint;
  }
}

/** report.json (and the confusion matrix) from the final evaluation, and the training curves from metrics.jsonl. */
export async function finishRun(
  run: OpenedRun,
  o: { evaluation: EvalResult; skipped: SkippedFile[]; backend: string; dataset: string; checkpoint: string },
): Promise<{ report: Report; metrics: EpochMetrics[] }> {
  const metrics = readMetrics(run.runDir);
  const seen = new Map<string, SkippedFile>();
  for (const s of o.skipped) if (!seen.has(s.path)) seen.set(s.path, s);
  const report: Report = {
    ...o.evaluation,
    skipped: [...seen.values()],
    variant: run.config.model.variant,
    backend: o.backend,
    dataset: o.dataset,
    epochs: run.config.train.epochs,
    trainImagesPerSec: metrics.length ? metrics.reduce((a, m) => a + m.imagesPerSec, 0) / metrics.length : 0,
    elapsedSeconds: (Date.now() - run.started) / 1000,
    checkpoint: o.checkpoint,
  };
  await writeReport(run.runDir, report);
  await writeCurves(run.runDir, metrics, curvesTitle(report.variant, report.dataset));
  return { report, metrics };
}

/** `--resume auto`: the run folder when it holds a checkpoint, nothing when it does not. */
function autoResume(out: string | undefined): string | undefined {
  if (!out) throw errors.invalidArgument('--resume auto', 'needs the run folder to look in', 'pass --out DIR: the same folder on every try');
  try {
    return resolveCheckpoint(out);
  } catch (e) {
    if (isSlferError(e) && e.code === 'SLFER_CHECKPOINT_NOT_FOUND') return undefined;
    throw e;
  }
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}
