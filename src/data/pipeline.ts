/**
 * Feeds training: decodes batches on a piscina pool, `prefetch` batches ahead of the consumer, and
 * yields them in order, so the engine computes on one batch while the next ones decode.
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { errors, fromWire } from '../errors.js';
import { compiledSibling } from '../util/compiled-path.js';
import { centerCrop, randomCropFlip } from './augment.js';
import type { DecodeResult, DecodeTask, Rgb } from './decode-task.js';
import { IMAGENET_MEAN, IMAGENET_STD } from './imagenet.js';
import type { Batch, Sample } from './types.js';

export { IMAGENET_MEAN, IMAGENET_STD } from './imagenet.js';

export interface PipelineOptions {
  /** Decoding threads; default min(2, available cores). */
  threads?: number;
  /** Batches decoding ahead of the consumer; default threads * 2. */
  prefetch?: number;
  resize: number;
  inputSize: number;
  mean?: Rgb;
  std?: Rgb;
  withMasks: boolean;
  topN: number;
}

export interface BatchOptions {
  batchSize: number;
  /** Random crop (and flip) keyed by (seed, epoch, sample index); otherwise the centre crop. */
  train: boolean;
  hflip: boolean;
  seed: number;
  epoch: number;
  /** Leave out a final batch smaller than batchSize. */
  dropLastBatch: boolean;
}

export class ImagePipeline {
  private readonly pool: Piscina<DecodeTask, DecodeResult>;
  private readonly prefetch: number;
  private readonly task: Omit<DecodeTask, 'items'>;

  constructor(options: PipelineOptions) {
    const threads = options.threads ?? Math.min(2, availableParallelism());
    this.prefetch = options.prefetch ?? threads * 2;
    if (!Number.isInteger(threads) || threads < 1 || !Number.isInteger(this.prefetch) || this.prefetch < 1) {
      throw errors.invalidArgument('image pipeline', `threads ${threads} and prefetch ${this.prefetch} must be positive integers`, 'set threads >= 1 and prefetch >= 1');
    }
    // Fail now, not on the first batch, if the crop cannot fit.
    centerCrop(options.resize, options.inputSize);
    this.task = {
      resize: options.resize,
      inputSize: options.inputSize,
      mean: options.mean ?? IMAGENET_MEAN,
      std: options.std ?? IMAGENET_STD,
      withMasks: options.withMasks,
      topN: options.topN,
    };
    this.pool = new Piscina({
      filename: compiledSibling(import.meta.url, 'decode-task.js'),
      minThreads: threads,
      maxThreads: threads,
    });
  }

  /**
   * The batches of `order` (indices into `samples`), in order. A batch holds fewer than batchSize
   * samples when some of its files were skipped (listed in batch.skipped), and none at all when
   * every one was. A mask that must not be used (SLFER_MASK_INVALID) throws when its batch's turn
   * comes. Stopping early (break, return, throw) lets the decoding tasks already submitted finish:
   * at most `prefetch` batches, cheaper than aborting, which would kill their threads.
   */
  async *batches(samples: Sample[], order: Int32Array, opts: BatchOptions): AsyncGenerator<Batch> {
    const { batchSize } = opts;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw errors.invalidArgument('batch size', `${batchSize} is not a positive integer`, 'set batchSize >= 1');
    }
    const count = opts.dropLastBatch ? Math.floor(order.length / batchSize) : Math.ceil(order.length / batchSize);
    const inFlight: Promise<Batch>[] = [];
    let submitted = 0;
    const fill = () => {
      for (; submitted < count && inFlight.length < this.prefetch; submitted++) {
        const task = this.run(samples, order.subarray(submitted * batchSize, (submitted + 1) * batchSize), opts);
        // Marks it handled now: a failure of a later batch while an earlier one is awaited must not
        // surface as an unhandled rejection; it is rethrown when its turn comes.
        task.catch(() => {});
        inFlight.push(task);
      }
    };
    try {
      fill();
      while (inFlight.length > 0) {
        const asked = performance.now();
        const batch = await inFlight.shift()!;
        batch.waitMs = performance.now() - asked;
        fill();
        yield batch;
      }
    } finally {
      await Promise.allSettled(inFlight);
    }
  }

  private run(samples: Sample[], indices: Int32Array, opts: BatchOptions): Promise<Batch> {
    const { resize, inputSize } = this.task;
    const items = Array.from(indices, (index) => {
      const s = samples[index];
      const crop = opts.train ? randomCropFlip(opts.seed, opts.epoch, index, resize, inputSize, opts.hflip) : centerCrop(resize, inputSize);
      return { id: s.id, imagePath: s.imagePath, maskPath: s.maskPath, label: s.label, crop };
    });
    return this.pool.run({ ...this.task, items }).then((r) => {
      if ('error' in r) throw fromWire(r.error, 'the image decoder');
      return r;
    });
  }

  /** Stops the decoding threads; pending batches reject. */
  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
