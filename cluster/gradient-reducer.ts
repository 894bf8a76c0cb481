import * as tf from '@tensorflow/tfjs';
import type { GradientReducer } from '../src/train/session.js';
import { pack, planBuckets, views, type Bucket } from './collective/buckets.js';
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

  async reduce(grads: tf.Tensor[], batchSize: number): Promise<{ grads: tf.Tensor[]; samples: number }> {
    this.count[0] = batchSize;
    await this.ring.allReduce(this.count); // also where the ranks meet
    const total = this.count[0];
    // Every rank used the same number of samples (the usual case): the weighted mean is the plain
    // mean, which the ring finishes itself (each rank divides the segment it owns), so the 55 MB
    // are touched twice here (into the buckets, back into tensors) instead of six times.
    const equal = total === batchSize * this.ring.worldSize;
    const weight = equal ? 1 : batchSize;
    const backend = tf.backend() as { typedArrayFromHeap?: (t: tf.Tensor) => Float32Array };
    // wasm: read the gradients where they lie in its heap. The views die at the next allocation,
    // so all buckets are filled before any tensor is created.
    const host = backend.typedArrayFromHeap ? grads.map((g) => backend.typedArrayFromHeap!(g)) : await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
    for (const bucket of this.buckets) {
      const flat = pack(bucket, host);
      if (weight !== 1) for (let i = 0; i < flat.length; i++) flat[i] *= weight;
    }
    for (const g of grads) g.dispose();
    const out: tf.Tensor[] = [];
    const inv = total > 0 ? 1 / total : 0;
    for (const bucket of this.buckets) {
      const { flat, first } = bucket;
      await this.ring.allReduce(flat, { compression: this.compression, average: equal });
      if (!equal) for (let i = 0; i < flat.length; i++) flat[i] *= inv;
      // The buckets are reused next step: wasm copies values into its heap, other backends may
      // keep the array they are given, so they get their own copy.
      views(bucket, flat).forEach((part, k) => out.push(tf.tensor(backend.typedArrayFromHeap ? part : part.slice(), this.shapes[first + k], 'float32')));
    }
    return { grads: out, samples: total };
  }
}
