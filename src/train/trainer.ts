import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { mergeConfig, resolveConfig, type Config, type ConfigInput } from '../config.js';
import { NUM_EXPRESSIONS, NUM_PARTS } from '../data/labels.js';
import { applyMaskPolicy } from '../data/mask-policy.js';
import { openDataset } from '../data/open-dataset.js';
import { ImagePipeline } from '../data/pipeline.js';
import { epochIndices } from '../data/sampler.js';
import type { DatasetSplits, SkippedFile } from '../data/types.js';
import { selectBackend, type Engine } from '../engine/backend.js';
import { errors } from '../errors.js';
import type { ModelConfig } from '../model/config.js';
import { SlferModel } from '../model/slfer.js';
import { Adam, learningRate } from './adam.js';
import { assertSameLayout, loadCheckpoint, saveCheckpoint, type TrainingState } from './checkpoint.js';
import { evaluateModel } from './evaluate-model.js';
import { appendMetrics, readMetrics, RUN_FILES, writeReport, writeRunConfig, type EpochMetrics, type Report } from './run-files.js';
import { computeGradients, finishStep, readLosses } from './step.js';

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

export function modelConfigOf(config: Config): ModelConfig {
  return { ...config.model, numExpressions: NUM_EXPRESSIONS, numParts: NUM_PARTS };
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
  log(`engine: ${engine.backend} (${engine.reason})`);
  for (const p of engine.passedOver) log(`  passed over ${p.backend}: ${p.reason}`);

  const { splits, skipped } = await prepareData(config, log);
  const model = new SlferModel(modelConfigOf(config), config.train.seed);
  const adam = new Adam(model.store.params, config.train);
  let startEpoch = 0;
  let step = 0;
  let best = -1;
  if (resumed) {
    assertSameLayout(resumed.path, { params: model.store.paramSpecs, buffers: model.store.bufferSpecs }, resumed.specs);
    model.store.write(resumed.params, resumed.buffers);
    adam.write(resumed.adam);
    startEpoch = resumed.epoch;
    step = resumed.step;
    best = Math.max(-1, ...readMetrics(runDir).filter((m) => m.epoch <= startEpoch).map((m) => m.testAccuracy));
    log(`resumed from ${resumed.path} after epoch ${startEpoch}`);
  }
  log(`model: SLFER ${config.model.variant}, width ${config.model.width}, ${config.model.inputSize}px, ${model.store.paramCount.toLocaleString('en-US')} parameters`);
  log(`data: ${splits.name} ${splits.train.length} train / ${splits.test.length} test images from ${splits.root}`);

  const pipeline = new ImagePipeline({
    threads: config.data.threads,
    prefetch: config.data.prefetch,
    resize: config.data.resize,
    inputSize: config.model.inputSize,
    withMasks: model.parts.st || model.parts.ct,
    topN: config.loss.topN,
  });
  const { epochs, batchSize, seed, milestones, gamma } = config.train;
  let lastCheckpoint = '';
  let bestCheckpoint = '';
  try {
    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      const lr = learningRate(config.train.lr, epoch, milestones, gamma);
      const order = epochIndices({ n: splits.train.length, epoch, seed, shuffle: true });
      const steps = Math.floor(order.length / batchSize);
      options.events?.epochStart?.({ epoch: epoch + 1, epochs, steps, lr });
      const t0 = performance.now();
      let waitMs = 0;
      let images = 0;
      const sums = { total: 0, expression: 0, segmentation: 0, components: 0 };
      let epochSkipped = 0;
      let s = 0;
      for await (const batch of pipeline.batches(splits.train, order, { batchSize, train: true, hflip: config.data.hflip, seed, epoch, dropLastBatch: true })) {
        waitMs += batch.waitMs;
        skipped.push(...batch.skipped);
        epochSkipped += batch.skipped.length;
        s++;
        // BatchNorm needs two samples; a batch emptied by unreadable files is only counted.
        if (batch.size < 2) continue;
        const r = computeGradients(model, batch, config.loss);
        adam.apply(r.grads, lr);
        finishStep(model, r);
        const l = await readLosses(r.losses);
        step++;
        images += batch.size;
        for (const k of ['total', 'expression', 'segmentation', 'components'] as const) sums[k] += (l[k] ?? 0) * batch.size;
        options.events?.step?.({ epoch: epoch + 1, step: s, steps, loss: l.total, images, seconds: (performance.now() - t0) / 1000 });
        if (options.signal?.aborted) throw errors.aborted(`training (epoch ${epoch + 1}, step ${s})`);
      }
      const trainSeconds = (performance.now() - t0) / 1000;
      const ev = await evaluateModel(model, pipeline, splits.test, batchSize);
      skipped.push(...ev.skipped);
      const m: EpochMetrics = {
        epoch: epoch + 1,
        trainLoss: sums.total / Math.max(1, images),
        trainLossParts: {
          expression: sums.expression / Math.max(1, images),
          ...(model.parts.st ? { segmentation: sums.segmentation / Math.max(1, images) } : {}),
          ...(model.parts.ct ? { components: sums.components / Math.max(1, images) } : {}),
        },
        testAccuracy: ev.accuracy,
        meanClassAccuracy: ev.meanClassAccuracy,
        lr,
        imagesPerSec: images / trainSeconds,
        epochSeconds: (performance.now() - t0) / 1000,
        dataWaitSeconds: waitMs / 1000,
        backend: engine.backend,
        skipped: epochSkipped + ev.skipped.length,
      };
      const isBest = m.testAccuracy > best;
      if (isBest) best = m.testAccuracy;
      lastCheckpoint = await checkpoint(join(runDir, RUN_FILES.checkpoints), model, adam, config, { epoch: epoch + 1, step, testAccuracy: m.testAccuracy }, isBest);
      if (isBest) bestCheckpoint = lastCheckpoint;
      appendMetrics(runDir, m);
      options.events?.epochEnd?.(m);
      if (options.signal?.aborted) throw errors.aborted(`training (after epoch ${epoch + 1})`);
    }
    const final = await evaluateModel(model, pipeline, splits.test, batchSize);
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
    await pipeline.close();
    adam.dispose();
    model.dispose();
  }
}

/** Opens the dataset and applies the mask policy of the variant. */
export async function prepareData(config: Config, log: (l: string) => void): Promise<{ splits: DatasetSplits; skipped: SkippedFile[] }> {
  const splits = await openDataset(config.data, log);
  const model = modelConfigOf(config);
  const needsMasks = model.variant !== 'baseline';
  return applyMaskPolicy(splits, { required: needsMasks, skipMissing: config.data.skipMissingMasks });
}

async function checkpoint(
  dir: string,
  model: SlferModel,
  adam: Adam,
  config: Config,
  at: { epoch: number; step: number; testAccuracy: number },
  best: boolean,
): Promise<string> {
  const { params, buffers } = await model.store.read();
  const state: TrainingState = {
    epoch: at.epoch,
    step: at.step,
    rng: { seed: config.train.seed, nextEpoch: at.epoch },
    model: model.config,
    params,
    buffers,
    adam: await adam.read(),
    testAccuracy: at.testAccuracy,
    config,
  };
  return saveCheckpoint(dir, state, { params: model.store.paramSpecs, buffers: model.store.bufferSpecs }, { keepLast: config.train.keepCheckpoints, best });
}

function dedupe(list: SkippedFile[]): SkippedFile[] {
  const seen = new Map<string, SkippedFile>();
  for (const s of list) if (!seen.has(s.path)) seen.set(s.path, s);
  return [...seen.values()];
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}
