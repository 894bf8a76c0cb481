import { errors } from '../../src/errors.js';

/**
 * Gradient fusion (PyTorch DDP buckets, Horovod tensor fusion): many small all-reduces cost a
 * round trip each, so consecutive gradient tensors are packed into flat buckets of at most
 * `bucketBytes`, and each bucket is all-reduced as one buffer. A bucket owns its flat buffer,
 * allocated once by planBuckets() and reused every step.
 *
 *   const buckets = planBuckets(grads.map((g) => g.length));
 *   for (const b of buckets) { const flat = pack(b, grads); await ring.allReduce(flat, { average: true }); unpack(b, flat, grads); }
 */

export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

export interface Bucket {
  /** Index of the bucket's first tensor in the full tensor list, and one past its last. */
  readonly first: number;
  readonly end: number;
  /** Where each of its tensors starts in `flat` (elements), plus the total at the end. */
  readonly offsets: readonly number[];
  /** The fused buffer: filled by pack(), read by unpack(). */
  readonly flat: Float32Array;
}

/**
 * Groups consecutive tensors (sizes in float32 elements) into buckets of at most bucketBytes;
 * a tensor larger than that gets a bucket of its own. Every tensor is in exactly one bucket.
 */
export function planBuckets(sizes: readonly number[], bucketBytes: number = DEFAULT_BUCKET_BYTES): Bucket[] {
  if (!(bucketBytes >= 4)) throw errors.invalidArgument('bucketBytes', `${bucketBytes} is too small`, 'use at least 4 bytes (default 25 MB)');
  const capacity = Math.floor(bucketBytes / 4);
  const buckets: Bucket[] = [];
  let first = 0;
  let offsets = [0];
  const close = (end: number) => {
    if (end > first) buckets.push({ first, end, offsets, flat: new Float32Array(offsets[offsets.length - 1]) });
    first = end;
    offsets = [0];
  };
  sizes.forEach((size, i) => {
    if (!Number.isInteger(size) || size < 0) throw errors.invalidArgument(`tensor ${i} size`, `${size} is not a whole number >= 0`, 'pass element counts');
    const filled = offsets[offsets.length - 1];
    if (filled + size > capacity && i > first) close(i);
    offsets.push(offsets[offsets.length - 1] + size);
  });
  close(sizes.length);
  return buckets;
}

/** Copies the bucket's tensors (from the full list, by index) into its flat buffer; returns it. */
export function pack(bucket: Bucket, tensors: ArrayLike<Float32Array>): Float32Array {
  const { flat, offsets, first, end } = bucket;
  for (let t = first; t < end; t++) {
    const src = tensors[t];
    checkSize(bucket, t, src);
    flat.set(src, offsets[t - first]);
  }
  return flat;
}

/** The bucket's tensors, in order, as views into a flat buffer laid out as pack() fills it. */
export function views(bucket: Bucket, flat: Float32Array): Float32Array[] {
  const { offsets } = bucket;
  if (flat.length !== offsets[offsets.length - 1]) {
    throw errors.invalidArgument('unpack', `flat buffer has ${flat.length} elements, the bucket ${offsets[offsets.length - 1]}`, 'pass the buffer pack() returned for this bucket');
  }
  return offsets.slice(1).map((end, k) => flat.subarray(offsets[k], end));
}

/** Copies a (reduced) flat buffer back into the bucket's tensors in the full list. */
export function unpack(bucket: Bucket, flat: Float32Array, tensors: ArrayLike<Float32Array>): void {
  views(bucket, flat).forEach((part, k) => {
    const t = bucket.first + k;
    checkSize(bucket, t, tensors[t]);
    tensors[t].set(part);
  });
}

function checkSize(bucket: Bucket, t: number, tensor: Float32Array | undefined): void {
  const want = bucket.offsets[t - bucket.first + 1] - bucket.offsets[t - bucket.first];
  if (!tensor || tensor.length !== want) {
    throw errors.invalidArgument(`tensor ${t}`, `has ${tensor?.length ?? 'no'} elements, the bucket plan ${want}`, 'pass the full tensor list, in the order and sizes given to planBuckets()');
  }
}
