import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { mergeConfig, resolveConfig, type Config, type ConfigInput } from '../config.js';
import { applyMaskPolicy } from '../data/mask-policy.js';
import { openDataset } from '../data/open-dataset.js';
import type { DatasetSplits, SkippedFile } from '../data/types.js';
import { selectBackend, type Engine } from '../engine/backend.js';
import { errors } from '../errors.js';
import type { SlferModel } from '../model/slfer.js';
import { learningRate } from './adam.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { EvalResult } from './metrics.js';
import { modelConfigOf } from './model-config.js';
import { formatPretrained, loadPretrained } from './pretrained.js';
import { appendMetrics, readMetrics, RUN_FILES, writeReport, writeRunConfig, type EpochMetrics, type Report } from './run-files.js';
import { TrainingSession, type EpochStats } from './session.js';


/** What a caller hears while training runs (the CLI draws its progress from these). */
export interface TrainEvents {
  log?(line: string): void;
  epochStart?(e: { epoch: number; epochs: number; steps: number; lr: number }): void;
  step?(s: { epoch: number; step: number; steps: number; loss: number; images: number; seconds: number }): void;
  epochEnd?(m: EpochMetrics): void;
}

export interface TrainOptions {
  /** Full or partial config (paper defaults fill the rest). Ignored fields: none; unknown ones are errors. */
  config?: ConfigInput;
  /** Run folder; default runs/<timestamp>, or the resumed run's folder. */
  out?: string;
  /** A run folder or checkpoint to continue from; `config` may then only change train.epochs. */
  resume?: string;
  signal?: AbortSignal;
  events?: TrainEvents;
}

export interface TrainResult {
  runDir: string;
  report: Report;
  metrics: EpochMetrics[];
  engine: Engine;
  lastCheckpoint: string;
  bestCheckpoint: string;
  skipped: SkippedFile[];
}

/**
 * Trains SLFER in this process: opens the dataset, picks the engine, then for each epoch runs the
 * worker step (gradients of the joint loss, Adam update, BN statistics), evaluates on the test
 * split, appends metrics.jsonl and writes a checkpoint; at the end writes report.json and the
 * confusion-matrix picture. Deterministic for a given seed and backend; resumable exactly.
 */
export async function train(options: TrainOptions = {}): Promise<TrainResult> {
  const log = options.events?.log ?? (() => {});
  const started = Date.now();
  const resumed = options.resume ? loadCheckpoint(options.resume) : undefined;
  const config = resumed
    ? resolveConfig(mergeConfig(resumed.config, { train: { epochs: options.config?.train?.epochs } }), 'resumed config')
    : resolveConfig(options.config ?? {}, 'config');
  const runDir = resolve(options.out ?? (resumed ? dirname(dirname(resumed.path)) : join('runs', timestamp())));
  if (!resumed && existsSync(join(runDir, RUN_FILES.metrics))) {
    throw errors.invalidArgument('run folder', `${runDir} already holds a run`, 'continue it with --resume, or choose another --out');
  }
  mkdirSync(runDir, { recursive: true });
  writeRunConfig(runDir, config);

  const engine = await selectBackend(config.engine.backend);
  log(`engine: ${engine.backend} (${engine.reason})${engine.convolutions ? `; convolutions: ${engine.convolutions}` : ''}`);
  for (const p of engine.passedOver) log(`  passed over ${p.backend}: ${p.reason}`);

  const { splits, skipped } = await prepareData(config, log);
  const session = new TrainingSession(config, splits);
  const { model } = session;
  let startEpoch = 0;
  let best = -1;
  if (resumed) {
    session.restore(resumed);
    startEpoch = resumed.epoch;
    best = Math.max(-1, ...readMetrics(runDir).filter((m) => m.epoch <= startEpoch).map((m) => m.testAccuracy));
    log(`resumed from ${resumed.path} after epoch ${startEpoch}`);
  } else if (config.model.pretrained) {
    for (const line of formatPretrained(await loadPretrained(model, config.model.pretrained))) log(line);
  }
  log(`model: SLFER ${config.model.variant}, width ${config.model.width}, ${config.model.inputSize}px, ${model.store.paramCount.toLocaleString('en-US')} parameters`);
  log(`data: ${splits.name} ${splits.train.length} train / ${splits.test.length} test images from ${splits.root}`);

  const { epochs, milestones, gamma } = config.train;
  const checkpointsDir = join(runDir, RUN_FILES.checkpoints);
  let lastCheckpoint = '';
  let bestCheckpoint = '';
  try {
    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      const lr = learningRate(config.train.lr, epoch, milestones, gamma);
      options.events?.epochStart?.({ epoch: epoch + 1, epochs, steps: session.stepsPerEpoch, lr });
      const st = await session.trainEpoch(epoch, { onStep: options.events?.step, signal: options.signal });
      skipped.push(...st.skipped);
      const ev = await session.evaluate();
      skipped.push(...ev.skipped);
      const m = epochMetrics(st, ev, lr, engine.backend, model.parts);
      const isBest = m.testAccuracy > best;
      if (isBest) best = m.testAccuracy;
      lastCheckpoint = saveCheckpoint(checkpointsDir, await session.state(epoch + 1, m.testAccuracy), specsOf(model), { keepLast: config.train.keepCheckpoints, best: isBest });
      if (isBest) bestCheckpoint = lastCheckpoint;
      appendMetrics(runDir, m);
      options.events?.epochEnd?.(m);
      if (options.signal?.aborted) throw errors.aborted(`training (after epoch ${epoch + 1})`);
    }
    const final = await session.evaluate();
    const metrics = readMetrics(runDir);
    const report: Report = {
      ...final,
      skipped: dedupe([...skipped, ...final.skipped]),
      variant: config.model.variant,
      backend: engine.backend,
      dataset: splits.name,
      epochs,
      trainImagesPerSec: metrics.length ? metrics.reduce((a, m) => a + m.imagesPerSec, 0) / metrics.length : 0,
      elapsedSeconds: (Date.now() - started) / 1000,
      checkpoint: lastCheckpoint,
    };
    await writeReport(runDir, report);
    return { runDir, report, metrics, engine, lastCheckpoint, bestCheckpoint: bestCheckpoint || lastCheckpoint, skipped: report.skipped };
  } finally {
    await session.close();
  }
}

/** One metrics.jsonl line from an epoch's training statistics and its evaluation. */
export function epochMetrics(st: EpochStats, ev: EvalResult & { skipped: SkippedFile[] }, lr: number, backend: string, parts: { st: boolean; ct: boolean }): EpochMetrics {
  const per = (x: number) => x / Math.max(1, st.images);
  return {
    epoch: st.epoch + 1,
    trainLoss: per(st.lossSums.total),
    trainLossParts: {
      expression: per(st.lossSums.expression),
      ...(parts.st ? { segmentation: per(st.lossSums.segmentation) } : {}),
      ...(parts.ct ? { components: per(st.lossSums.components) } : {}),
    },
    testAccuracy: ev.accuracy,
    meanClassAccuracy: ev.meanClassAccuracy,
    lr,
    imagesPerSec: st.images / st.seconds,
    epochSeconds: st.seconds,
    dataWaitSeconds: st.waitMs / 1000,
    backend,
    skipped: st.skipped.length + ev.skipped.length,
  };
}

export const specsOf = (model: SlferModel) => ({ params: model.store.paramSpecs, buffers: model.store.bufferSpecs });

/** Opens the dataset and applies the mask policy of the variant. */
export async function prepareData(config: Config, log: (l: string) => void): Promise<{ splits: DatasetSplits; skipped: SkippedFile[] }> {
  const splits = await openDataset(config.data, log);
  const model = modelConfigOf(config);
  const needsMasks = model.variant !== 'baseline';
  return applyMaskPolicy(splits, { required: needsMasks, skipMissing: config.data.skipMissingMasks });
}

function dedupe(list: SkippedFile[]): SkippedFile[] {
  const seen = new Map<string, SkippedFile>();
  for (const s of list) if (!seen.has(s.path)) seen.set(s.path, s);
  return [...seen.values()];
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}
