import * as tf from '@tensorflow/tfjs';
import type { Config } from '../config.js';
import { ImagePipeline } from '../data/pipeline.js';
import { epochIndices } from '../data/sampler.js';
import type { DatasetSplits, Sample, SkippedFile } from '../data/types.js';
import { errors } from '../errors.js';
import { SlferModel } from '../model/slfer.js';
import { Adam, learningRate } from './adam.js';
import { assertSameLayout, type TrainingState } from './checkpoint.js';
import { evaluateModel } from './evaluate-model.js';
import type { EvalResult } from './metrics.js';
import { computeGradients, finishStep, readLosses } from './step.js';
import { modelConfigOf, pipelineOptionsOf } from './model-config.js';

/**
 * Averages one step's gradients across workers, in place of the given tensors (which it disposes),
 * weighting each worker by its batch size; also says how many samples all workers used together.
 * Single-process training has none.
 */
export interface GradientReducer {
  reduce(grads: tf.Tensor[], batchSize: number): Promise<{ grads: tf.Tensor[]; samples: number }>;
}

export interface StepTiming {
  computeMs: number;
  reduceMs: number;
  waitMs: number;
}

export interface EpochStats extends StepTiming {
  epoch: number;
  steps: number;
  images: number;
  seconds: number;
  lossSums: { total: number; expression: number; segmentation: number; components: number };
  skipped: SkippedFile[];
}

export interface StepEvent {
  epoch: number;
  step: number;
  steps: number;
  loss: number;
  images: number;
  seconds: number;
}

/**
 * One worker's training state and work: model, optimizer, data pipeline and its shard. The
 * single-process trainer runs one session with rank 0 of 1; the distributed runtime runs one per
 * worker process with a ring all-reduce as its GradientReducer. Every rank runs the same number of
 * steps per epoch (DistributedSampler padding plus dropped last batch), or the all-reduce would
 * deadlock.
 */
export class TrainingSession {
  readonly model: SlferModel;
  readonly adam: Adam;
  readonly pipeline: ImagePipeline;
  step = 0;

  constructor(
    readonly config: Config,
    readonly splits: DatasetSplits,
    readonly rank = 0,
    readonly worldSize = 1,
  ) {
    this.model = new SlferModel(modelConfigOf(config), config.train.seed);
    this.adam = new Adam(this.model.store.params, config.train);
    this.pipeline = new ImagePipeline(pipelineOptionsOf(config, { withMasks: this.model.parts.st || this.model.parts.ct, prefetch: config.data.prefetch }));
  }

  /** Steps every rank takes in one epoch. */
  get stepsPerEpoch(): number {
    return Math.floor(Math.ceil(this.splits.train.length / this.worldSize) / this.config.train.batchSize);
  }

  restore(state: TrainingState & { path: string; specs: Parameters<typeof assertSameLayout>[2] }): void {
    const store = this.model.store;
    assertSameLayout(state.path, { params: store.paramSpecs, buffers: store.bufferSpecs }, state.specs);
    store.write(state.params, state.buffers);
    this.adam.write(state.adam);
    this.step = state.step;
  }

  async trainEpoch(
    epoch: number,
    opts: { reducer?: GradientReducer; onStep?: (e: StepEvent) => void; signal?: AbortSignal } = {},
  ): Promise<EpochStats> {
    const { batchSize, seed, milestones, gamma } = this.config.train;
    const lr = learningRate(this.config.train.lr, epoch, milestones, gamma);
    const order = epochIndices({ n: this.splits.train.length, epoch, seed, shuffle: true, rank: this.rank, worldSize: this.worldSize });
    const steps = this.stepsPerEpoch;
    const stats: EpochStats = {
      epoch,
      steps,
      images: 0,
      seconds: 0,
      computeMs: 0,
      reduceMs: 0,
      waitMs: 0,
      lossSums: { total: 0, expression: 0, segmentation: 0, components: 0 },
      skipped: [],
    };
    const t0 = performance.now();
    let s = 0;
    const batches = this.pipeline.batches(this.splits.train, order.subarray(0, steps * batchSize), {
      batchSize,
      train: true,
      hflip: this.config.data.hflip,
      seed,
      epoch,
      dropLastBatch: true,
    });
    for await (const batch of batches) {
      stats.waitMs += batch.waitMs;
      stats.skipped.push(...batch.skipped);
      s++;
      const tc = performance.now();
      // BatchNorm needs two samples: a batch emptied by unreadable files contributes zero gradient
      // (and zero weight) but still joins the all-reduce, so no rank waits for it.
      const usable = batch.size >= 2;
      const r = usable ? computeGradients(this.model, batch, this.config.loss) : undefined;
      let grads = r ? r.grads : this.model.store.params.map((p) => tf.zerosLike(p));
      let samples = usable ? batch.size : 0;
      const l = r ? await readLosses(r.losses) : undefined;
      stats.computeMs += performance.now() - tc;
      if (opts.reducer) {
        const tr = performance.now();
        ({ grads, samples } = await opts.reducer.reduce(grads, samples));
        stats.reduceMs += performance.now() - tr;
      }
      const ta = performance.now();
      // No sample anywhere (every image of the step unreadable): no update at all, as if the batch
      // had not been there; Adam on zero gradients would still move the weights by its momentum.
      if (samples > 0) this.adam.apply(grads, lr);
      for (const g of grads) g.dispose();
      if (r) finishStep(this.model, r.bnStats);
      stats.computeMs += performance.now() - ta;
      this.step++;
      if (l) {
        stats.images += batch.size;
        for (const k of ['total', 'expression', 'segmentation', 'components'] as const) stats.lossSums[k] += (l[k] ?? 0) * batch.size;
      }
      opts.onStep?.({ epoch: epoch + 1, step: s, steps, loss: l?.total ?? NaN, images: stats.images, seconds: (performance.now() - t0) / 1000 });
      if (opts.signal?.aborted) throw errors.aborted(`training (epoch ${epoch + 1}, step ${s})`);
    }
    stats.seconds = (performance.now() - t0) / 1000;
    return stats;
  }

  /** Evaluates this rank's share of the test split (every worldSize-th image, no padding). */
  async evaluate(): Promise<EvalResult & { skipped: SkippedFile[] }> {
    const shard: Sample[] = this.splits.test.filter((_, i) => i % this.worldSize === this.rank);
    return evaluateModel(this.model, this.pipeline, shard, this.config.train.batchSize);
  }

  /** Everything a checkpoint holds, read from the engine. */
  async state(epoch: number, testAccuracy?: number): Promise<TrainingState> {
    const { params, buffers } = await this.model.store.read();
    return {
      epoch,
      step: this.step,
      rng: { seed: this.config.train.seed, nextEpoch: epoch },
      model: this.model.config,
      params,
      buffers,
      adam: await this.adam.read(),
      testAccuracy,
      worldSize: this.worldSize,
      config: this.config,
    };
  }

  async close(): Promise<void> {
    await this.pipeline.close();
    this.adam.dispose();
    this.model.dispose();
  }
}
