import { basename } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { mergeConfig, resolveConfig } from '../config.js';
import { EXPRESSIONS } from '../data/labels.js';
import { ImagePipeline } from '../data/pipeline.js';
import type { Sample } from '../data/types.js';
import { selectBackend, type BackendRequest } from '../engine/backend.js';
import { errors } from '../errors.js';
import { evaluateModel } from './evaluate-model.js';
import { checkMasksCount, DEFAULT_MASKS_COUNT, requireSt, writeMasksFigure } from './eval-masks.js';
import { loadTrainedModel } from './load-model.js';
import { pipelineOptionsOf } from './model-config.js';
import { writeReport, type Report } from './run-files.js';
import { prepareData } from './trainer.js';

export interface EvaluateOptions {
  /** Run folder or checkpoint folder. */
  checkpoint: string;
  /** Evaluate on another copy of the dataset (same layout as trained on, or another kind). */
  data?: { dataset?: 'rafdb' | 'sfew' | 'synthetic'; root?: string };
  backend?: BackendRequest;
  /** Folder to write report.json and the confusion matrix into. */
  out?: string;
  /** Also draw the first `count` test images (default 8) with their label and ST's prediction into `file` (PNG). */
  masks?: { file: string; count?: number };
  log?: (line: string) => void;
}

/** Test-split accuracy, per-class accuracy and confusion matrix of a trained checkpoint. */
export async function evaluate(options: EvaluateOptions): Promise<Report> {
  const started = Date.now();
  const log = options.log ?? (() => {});
  const masksCount = options.masks?.count ?? DEFAULT_MASKS_COUNT;
  if (options.masks) checkMasksCount(masksCount);
  const engine = await selectBackend(options.backend ?? 'auto');
  log(`engine: ${engine.backend} (${engine.reason})${engine.convolutions ? `; convolutions: ${engine.convolutions}` : ''}`);
  const { model, config: trained, path, epoch } = loadTrainedModel(options.checkpoint);
  try {
    if (options.masks) requireSt(model, trained.model.variant, path);
    const config = resolveConfig(mergeConfig(trained, { data: options.data ?? {} }), 'evaluation config');
    // Evaluation needs no masks: the ST and CT heads do not run at test time.
    const { splits } = await prepareData({ ...config, model: { ...config.model, variant: 'baseline' } }, log);
    const pipeline = new ImagePipeline(pipelineOptionsOf(config, { withMasks: false }));
    try {
      const r = await evaluateModel(model, pipeline, splits.test, config.train.batchSize);
      const report: Report = {
        ...r,
        variant: config.model.variant,
        backend: engine.backend,
        dataset: splits.name,
        epochs: epoch,
        trainImagesPerSec: 0,
        elapsedSeconds: (Date.now() - started) / 1000,
        checkpoint: path,
      };
      if (options.out) await writeReport(options.out, report);
      if (options.masks) {
        const rows = await writeMasksFigure({ model, config, samples: splits.test, images: pipeline, file: options.masks.file, count: masksCount });
        log(`ST predictions of the first ${rows} test images: ${options.masks.file}`);
      }
      return report;
    } finally {
      await pipeline.close();
    }
  } finally {
    model.dispose();
  }
}

export interface Prediction {
  image: string;
  expression: string;
  probabilities: Record<string, number>;
}

export interface PredictOptions {
  checkpoint: string;
  images: string[];
  backend?: BackendRequest;
}

/**
 * Expression and class probabilities per image, with the test-time preprocessing the model was
 * trained with (resize, centre crop, normalisation). An unreadable image is an error naming it.
 */
export async function predict(options: PredictOptions): Promise<Prediction[]> {
  await selectBackend(options.backend ?? 'auto');
  const { model, config } = loadTrainedModel(options.checkpoint);
  const pipeline = new ImagePipeline(pipelineOptionsOf(config, { withMasks: false, threads: 1 }));
  const samples: Sample[] = options.images.map((p, i) => ({ id: `${i}:${basename(p)}`, imagePath: p, maskPath: null, expectedMaskPath: '', label: 0 }));
  const out: Prediction[] = [];
  try {
    const order = Int32Array.from(samples.keys());
    for await (const batch of pipeline.batches(samples, order, { batchSize: 16, train: false, hflip: false, seed: 0, epoch: 0, dropLastBatch: false })) {
      if (batch.skipped.length) throw errors.imageUnreadable(batch.skipped[0].path, batch.skipped[0].reason);
      const probs = tf.tidy(() => tf.softmax(model.forward(tf.tensor4d(batch.images, [batch.size, batch.inputSize, batch.inputSize, 3]), { training: false }, 'expression').expression));
      const values = await probs.data();
      probs.dispose();
      batch.ids.forEach((id, b) => {
        const p = Array.from(values.subarray(b * EXPRESSIONS.length, (b + 1) * EXPRESSIONS.length));
        const best = p.indexOf(Math.max(...p));
        out.push({
          image: samples[Number(id.slice(0, id.indexOf(':')))].imagePath,
          expression: EXPRESSIONS[best],
          probabilities: Object.fromEntries(EXPRESSIONS.map((e, k) => [e, p[k]])),
        });
      });
    }
    return out;
  } finally {
    await pipeline.close();
    model.dispose();
  }
}
