import { join } from 'node:path';
import type { Config } from '../config.js';
import { applyMaskPolicy } from '../data/mask-policy.js';
import { openDataset } from '../data/open-dataset.js';
import type { DatasetSplits, SkippedFile } from '../data/types.js';
import { selectBackend, type Engine } from '../engine/backend.js';
import { errors } from '../errors.js';
import type { SlferModel } from '../model/slfer.js';
import { learningRate } from './adam.js';
import { saveCheckpoint } from './checkpoint.js';
import { epochMetrics } from './epoch-metrics.js';
import { modelConfigOf } from './model-config.js';
import { formatPretrained, loadPretrained } from './pretrained.js';
import { appendMetrics, RUN_FILES, type EpochMetrics, type Report } from './run-files.js';
import { finishRun, openRun, RunProgress, type RunOptions } from './run-lifecycle.js';
import { TrainingSession } from './session.js';

/** What a caller hears while training runs (the CLI draws its progress from these). */
export interface TrainEvents {
  log?(line: string): void;
  epochStart?(e: { epoch: number; epochs: number; steps: number; lr: number }): void;
  step?(s: { epoch: number; step: number; steps: number; loss: number; images: number; seconds: number }): void;
  epochEnd?(m: EpochMetrics): void;
}

/** The config (partial: paper defaults fill the rest), run folder and checkpoint to resume (RunOptions). */
export interface TrainOptions extends RunOptions {
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
  const run = openRun(options, 1);
  const { config, runDir, resumed, startEpoch } = run;

  const engine = await selectBackend(config.engine.backend);
  log(`engine: ${engine.backend} (${engine.reason})${engine.convolutions ? `; convolutions: ${engine.convolutions}` : ''}`);
  for (const p of engine.passedOver) log(`  passed over ${p.backend}: ${p.reason}`);

  const { splits, skipped } = await prepareData(config, log);
  const session = new TrainingSession(config, splits);
  const { model } = session;
  const progress = new RunProgress(runDir, startEpoch);
  if (resumed) {
    session.restore(resumed);
    const at = session.resumePoint;
    log(`resumed from ${resumed.path} ${at ? `in epoch ${at.epoch + 1}, after step ${at.step} of ${session.stepsPerEpoch}` : `after epoch ${startEpoch}`}`);
  } else if (config.model.pretrained) {
    for (const line of formatPretrained(await loadPretrained(model, config.model.pretrained))) log(line);
  }
  log(`model: SLFER ${config.model.variant}, width ${config.model.width}, ${config.model.inputSize}px, ${model.store.paramCount.toLocaleString('en-US')} parameters`);
  log(`data: ${splits.name} ${splits.train.length} train / ${splits.test.length} test images from ${splits.root}`);

  const { epochs, milestones, gamma, keepCheckpoints: keepLast, checkpointEvery } = config.train;
  const checkpointsDir = join(runDir, RUN_FILES.checkpoints);
  try {
    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      const lr = learningRate(config.train.lr, epoch, milestones, gamma);
      options.events?.epochStart?.({ epoch: epoch + 1, epochs, steps: session.stepsPerEpoch, lr });
      const st = await session.trainEpoch(epoch, {
        onStep: options.events?.step,
        signal: options.signal,
        checkpointEvery,
        // Mid-epoch checkpoints are never "best" and do not count for report.json's checkpoint.
        onCheckpointDue: async () => void saveCheckpoint(checkpointsDir, await session.midEpochState(), specsOf(model), { keepLast }),
      });
      skipped.push(...st.skipped);
      const ev = await session.evaluate();
      skipped.push(...ev.skipped);
      const m = epochMetrics(epoch, [{ rank: 0, ...st, skipped: st.skipped.length + ev.skipped.length }], ev, lr, engine.backend, model.parts);
      const isBest = progress.improves(m);
      // The metrics line first: killed between the two, the run resumes from an earlier checkpoint
      // and redoes this epoch, whose line appendMetrics then replaces; the other way round, the
      // resumed run would start after this epoch and never write its line.
      appendMetrics(runDir, m);
      progress.checkpointed(saveCheckpoint(checkpointsDir, await session.state(epoch + 1, m.testAccuracy), specsOf(model), { keepLast, best: isBest }), isBest);
      options.events?.epochEnd?.(m);
      if (options.signal?.aborted) throw errors.aborted(`training (after epoch ${epoch + 1})`);
    }
    const final = await session.evaluate();
    const { report, metrics } = await finishRun(run, { evaluation: final, skipped: [...skipped, ...final.skipped], backend: engine.backend, dataset: splits.name, checkpoint: progress.lastCheckpoint });
    return { runDir, report, metrics, engine, lastCheckpoint: progress.lastCheckpoint, bestCheckpoint: progress.bestOrLast, skipped: report.skipped };
  } finally {
    await session.close();
  }
}

export const specsOf = (model: SlferModel) => ({ params: model.store.paramSpecs, buffers: model.store.bufferSpecs });

/** Opens the dataset and applies the mask policy of the variant. */
export async function prepareData(config: Config, log: (l: string) => void): Promise<{ splits: DatasetSplits; skipped: SkippedFile[] }> {
  const splits = await openDataset(config.data, log);
  const model = modelConfigOf(config);
  const needsMasks = model.variant !== 'baseline';
  return applyMaskPolicy(splits, { required: needsMasks, skipMissing: config.data.skipMissingMasks });
}
