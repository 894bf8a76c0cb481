import * as tf from '@tensorflow/tfjs';
import type { ImagePipeline } from '../data/pipeline.js';
import type { Sample, SkippedFile } from '../data/types.js';
import type { SlferModel } from '../model/slfer.js';
import { ConfusionMatrix, type EvalResult } from './metrics.js';

/**
 * Test-time pass: centre crops, BN moving statistics, backbone + ECT only (the ST and CT heads are
 * training aids, paper §Method), argmax over the expression logits.
 */
export async function evaluateModel(
  model: SlferModel,
  pipeline: ImagePipeline,
  samples: Sample[],
  batchSize: number,
): Promise<EvalResult & { skipped: SkippedFile[] }> {
  const cm = new ConfusionMatrix();
  const skipped: SkippedFile[] = [];
  const order = Int32Array.from(samples.keys());
  for await (const batch of pipeline.batches(samples, order, { batchSize, train: false, hflip: false, seed: 0, epoch: 0, dropLastBatch: false })) {
    skipped.push(...batch.skipped);
    if (batch.size === 0) continue;
    const predicted = tf.tidy(() => {
      const images = tf.tensor4d(batch.images, [batch.size, batch.inputSize, batch.inputSize, 3]);
      return tf.argMax(model.forward(images, { training: false }, 'expression').expression, 1);
    });
    cm.add(batch.labels, await predicted.data());
    predicted.dispose();
  }
  return { ...cm.result(), skipped };
}
