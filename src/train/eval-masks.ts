/**
 * `eval --masks FILE.png`: what ST learnt, seen on the first test images. Each image goes through
 * the same test-time pipeline as evaluation (resize, centre crop, normalisation), the model runs all
 * its heads, and the figure shows the crop, the 8-part label ST was trained against (the mask on
 * disk through the same resize and crop as training's), ST's argmax and the expressions.
 */
import * as tf from '@tensorflow/tfjs';
import type { Config } from '../config.js';
import { EXPRESSIONS, NUM_PARTS } from '../data/labels.js';
import { ImagePipeline } from '../data/pipeline.js';
import type { Sample } from '../data/types.js';
import { errors } from '../errors.js';
import { variantParts, VARIANTS } from '../model/config.js';
import type { SlferModel } from '../model/slfer.js';
import { writeFileAtomic } from '../util/atomic.js';
import { drawMasksFigure, type MasksRow } from './eval-masks-figure.js';
import { pipelineOptionsOf } from './model-config.js';

export const DEFAULT_MASKS_COUNT = 8;

/** Refuses, before anything runs, a count that is not a positive whole number. */
export function checkMasksCount(count: number): void {
  if (!Number.isInteger(count) || count < 1) {
    throw errors.invalidArgument('--masks-count', `${count} is not a positive whole number`, 'pass how many test images to draw, e.g. --masks-count 8');
  }
}

/** A model without ST has no prediction to draw: say so before evaluation spends any time. */
export function requireSt(model: SlferModel, variant: string, checkpoint: string): void {
  if (!model.parts.st) throw errors.variantWithoutSt(checkpoint, variant, '--masks', VARIANTS.filter((v) => variantParts(v).st));
}

export interface MasksFigureOptions {
  model: SlferModel;
  config: Config;
  /** The test split, in order; the first `count` readable images are drawn. */
  samples: Sample[];
  /** A pipeline without masks on `config` (evaluation's). */
  images: ImagePipeline;
  file: string;
  count: number;
}

/** Writes the figure atomically; resolves to how many rows it has (fewer than count when the split is shorter). */
export async function writeMasksFigure(o: MasksFigureOptions): Promise<number> {
  checkMasksCount(o.count);
  const size = o.config.model.inputSize;
  // Batches no larger than evaluation's, so a large count does not hold all its logits at once.
  const batchSize = Math.min(o.count, o.config.train.batchSize);
  const predicted = await predictFirst(o.model, o.images, o.samples, o.count, batchSize);
  if (predicted.length === 0) {
    throw errors.invalidArgument('--masks', 'no test image could be read, so there is nothing to draw', 'check the test images the evaluation lists as skipped');
  }
  const labels = await labelsOf(o.config, predicted.map((p) => p.sample), batchSize);
  const { mean, std } = o.config.data;
  const rows: MasksRow[] = [];
  for (const p of predicted) {
    const label = labels.get(p.sample.id) ?? (p.sample.maskPath === null ? 'no mask' : 'cannot read mask');
    const pixelAccuracy = typeof label === 'string' ? null : accuracyOf(label, p.parts);
    rows.push({
      image: denormalise(p.image, mean, std),
      label: typeof label === 'string' ? { note: label } : label,
      predicted: p.parts,
      trueExpression: EXPRESSIONS[p.sample.label],
      predictedExpression: EXPRESSIONS[p.expression],
      pixelAccuracy,
    });
  }
  writeFileAtomic(o.file, await drawMasksFigure(rows, size).png());
  return rows.length;
}

interface Predicted {
  sample: Sample;
  /** The normalised crop, size×size×3. */
  image: Float32Array;
  /** ST's argmax per pixel. */
  parts: Uint8Array;
  expression: number;
}

/** The first `count` readable samples through the model (all heads, BN moving statistics). */
async function predictFirst(model: SlferModel, images: ImagePipeline, samples: Sample[], count: number, batchSize: number): Promise<Predicted[]> {
  const byId = new Map(samples.map((s) => [s.id, s]));
  const out: Predicted[] = [];
  const order = Int32Array.from(samples.keys());
  for await (const batch of images.batches(samples, order, { batchSize, train: false, hflip: false, seed: 0, epoch: 0, dropLastBatch: false })) {
    if (batch.size > 0) {
      const s = batch.inputSize;
      const [seg, expr] = tf.tidy(() => {
        const y = model.forward(tf.tensor4d(batch.images, [batch.size, s, s, 3]), { training: false }, 'all');
        return [tf.argMax(y.segmentation!, 3), tf.argMax(y.expression, 1)];
      });
      const [parts, expressions] = await Promise.all([seg.data(), expr.data()]);
      seg.dispose();
      expr.dispose();
      for (let b = 0; b < batch.size && out.length < count; b++) {
        out.push({
          sample: byId.get(batch.ids[b])!,
          image: batch.images.slice(b * s * s * 3, (b + 1) * s * s * 3),
          parts: Uint8Array.from(parts.subarray(b * s * s, (b + 1) * s * s)),
          expression: expressions[b],
        });
      }
    }
    if (out.length === count) break; // the pipeline lets the batches already decoding finish
  }
  return out;
}

/**
 * The 8-part crops of the samples' masks, by sample id, from a pipeline with masks (the same resize,
 * nearest neighbour, centre crop and aggregation as training): a sample whose mask is absent or
 * unreadable has none. A mask that must not be used stops, as in training (SLFER_MASK_INVALID).
 */
async function labelsOf(config: Config, samples: Sample[], batchSize: number): Promise<Map<string, Uint8Array>> {
  const withMasks = samples.filter((s) => s.maskPath !== null);
  const out = new Map<string, Uint8Array>();
  if (withMasks.length === 0) return out;
  const pipeline = new ImagePipeline(pipelineOptionsOf(config, { withMasks: true, threads: 1, prefetch: 1 }));
  try {
    const order = Int32Array.from(withMasks.keys());
    for await (const batch of pipeline.batches(withMasks, order, { batchSize, train: false, hflip: false, seed: 0, epoch: 0, dropLastBatch: false })) {
      const pixels = batch.inputSize * batch.inputSize;
      batch.ids.forEach((id, b) => out.set(id, batch.masks!.slice(b * pixels, (b + 1) * pixels)));
    }
  } finally {
    await pipeline.close();
  }
  return out;
}

/** Correct pixels among the known ones (UNKNOWN_PART left out, as ST's loss leaves it out). */
function accuracyOf(label: Uint8Array, predicted: Uint8Array): number | null {
  let known = 0;
  let correct = 0;
  for (let i = 0; i < label.length; i++) {
    if (label[i] >= NUM_PARTS) continue;
    known++;
    if (label[i] === predicted[i]) correct++;
  }
  return known === 0 ? null : correct / known;
}

/** The pipeline's (v/255 - mean) / std undone, back to the bytes the crop was made of. */
function denormalise(x: Float32Array, mean: readonly number[], std: readonly number[]): Uint8Array {
  const out = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.min(255, Math.max(0, Math.round((x[i] * std[i % 3] + mean[i % 3]) * 255)));
  return out;
}
