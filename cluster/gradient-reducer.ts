import * as tf from '@tensorflow/tfjs';
import type { GradientReducer } from '../src/train/session.js';
import { pack, planBuckets, unpack, type Bucket } from './collective/buckets.js';
import type { Ring } from './collective/ring.js';

/**
 * DDP's gradient averaging over the ring: gradients leave the engine in the model's parameter
 * order, are fused into buckets (one all-reduce per bucket, not per tensor), summed around the
 * ring and divided by the number of samples all workers used, so a worker whose batch lost
 * unreadable images weighs less, and one with an empty batch (zero gradient, zero weight) still
 * takes part and nobody waits for it.
 */
export class RingGradientReducer implements GradientReducer {
  private readonly buckets: Bucket[];
  private readonly count = new Float32Array(1);

  constructor(
    private readonly ring: Ring,
    private readonly shapes: number[][],
    bucketBytes: number,
    private readonly compression: 'none' | 'fp16' = 'none',
  ) {
    this.buckets = planBuckets(
      shapes.map((s) => s.reduce((a, b) => a * b, 1)),
      bucketBytes,
    );
  }

  async reduce(grads: tf.Tensor[], batchSize: number): Promise<tf.Tensor[]> {
    const host = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
    for (const g of grads) g.dispose();
    this.count[0] = batchSize;
    await this.ring.allReduce(this.count);
    const total = this.count[0];
    for (const bucket of this.buckets) {
      const flat = pack(bucket, host);
      // Weight by this worker's samples; the sum over workers divided by all samples is the mean
      // gradient of the global batch.
      if (batchSize !== 1) for (let i = 0; i < flat.length; i++) flat[i] *= batchSize;
      await this.ring.allReduce(flat, { compression: this.compression });
      const inv = total > 0 ? 1 / total : 0;
      for (let i = 0; i < flat.length; i++) flat[i] *= inv;
      unpack(bucket, flat, host);
    }
    return host.map((h, i) => tf.tensor(h, this.shapes[i], 'float32'));
  }
}
