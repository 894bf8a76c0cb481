import * as tf from '@tensorflow/tfjs';
import type { ImagePipeline } from '../data/pipeline.js';
import type { Sample, SkippedFile } from '../data/types.js';
import type { SlferModel } from '../model/slfer.js';

export interface EctFeatures {
  /** One row per decoded image: ECT's activations before its classifier. */
  rows: Float64Array[];
  /** Each row's expression label (0-based, RAF-DB order) and sample id. */
  labels: number[];
  ids: string[];
  skipped: SkippedFile[];
}

/**
 * ECT's features of `samples` with the test-time pass evaluateModel uses (centre crops, no flip,
 * BN moving statistics, backbone + ECT only), so the t-SNE shows what the classifier sees.
 */
export async function ectFeatures(model: SlferModel, pipeline: ImagePipeline, samples: Sample[], batchSize: number): Promise<EctFeatures> {
  const out: EctFeatures = { rows: [], labels: [], ids: [], skipped: [] };
  const order = Int32Array.from(samples.keys());
  for await (const batch of pipeline.batches(samples, order, { batchSize, train: false, hflip: false, seed: 0, epoch: 0, dropLastBatch: false })) {
    out.skipped.push(...batch.skipped);
    if (batch.size === 0) continue;
    const features = tf.tidy(() => {
      const images = tf.tensor4d(batch.images, [batch.size, batch.inputSize, batch.inputSize, 3]);
      return model.forward(images, { training: false }, 'expression', { ectFeatures: true }).ectFeatures!;
    });
    try {
      const [, d] = features.shape;
      const values = await features.data();
      for (let b = 0; b < batch.size; b++) out.rows.push(Float64Array.from(values.subarray(b * d, (b + 1) * d)));
    } finally {
      features.dispose();
    }
    out.labels.push(...batch.labels);
    out.ids.push(...batch.ids);
  }
  return out;
}
