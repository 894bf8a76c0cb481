import * as tf from '@tensorflow/tfjs';
import type { Config } from '../config.js';
import { ImagePipeline } from '../data/pipeline.js';
import { epochIndices } from '../data/sampler.js';
import type { DatasetSplits, Sample, SkippedFile } from '../data/types.js';
import { errors } from '../errors.js';
import { SlferModel } from '../model/slfer.js';
import { Adam, learningRate } from './adam.js';
import { assertSameLayout, type RankEpochProgress, type TrainingState } from './checkpoint.js';
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
  /** Steps of the epoch done before this call (a mid-epoch resume), whose sums are included. */
  startStep: number;
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

export interface TrainEpochOptions {
  reducer?: GradientReducer;
  onStep?: (e: StepEvent) => void;
  signal?: AbortSignal;
  /**
   * Call onCheckpointDue after every checkpointEvery-th step of the epoch (counted from its start,
   * so every rank, and a resumed run, stops at the same steps), but not after its last step: the
   * end-of-epoch checkpoint follows that.
   */
  checkpointEvery?: number;
  /**
   * Awaited between steps; inside it, rankProgress() and midEpochState() describe the epoch so far.
   * In a worker group every rank must take part (it is the same step on all of them).
   */
  onCheckpointDue?: (step: number) => Promise<void>;
}

/** A restored mid-epoch checkpoint, waiting for the trainEpoch call that continues it. */
interface ResumePoint {
  epoch: number;
  step: number;
  progress: Omit<RankEpochProgress, 'buffers'>;
}

/** The epoch being trained, at a checkpoint hook. */
interface AtBoundary {
  epoch: number;
  step: number;
  stats: EpochStats;
  /** Seconds of the epoch spent before this call (a resumed run), plus performance.now() at its start. */
  secondsBefore: number;
  t0: number;
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
  private resumeAt?: ResumePoint;
  private boundary?: AtBoundary;

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

  /** The restored mid-epoch position that the next trainEpoch continues from, if any. */
  get resumePoint(): { epoch: number; step: number } | undefined {
    return this.resumeAt && { epoch: this.resumeAt.epoch, step: this.resumeAt.step };
  }

  /**
   * Loads a checkpoint into this rank. An end-of-epoch one gives every rank the same state; a
   * mid-epoch one gives this rank its own BN statistics and epoch sums (rank `this.rank` of the
   * checkpoint's, whose world size must be this one), and the next trainEpoch(state.epoch)
   * continues after step state.stepInEpoch.
   */
  restore(state: TrainingState & { path: string; specs: Parameters<typeof assertSameLayout>[2] }): void {
    const store = this.model.store;
    assertSameLayout(state.path, { params: store.paramSpecs, buffers: store.bufferSpecs }, state.specs);
    let buffers = state.buffers;
    let resumeAt: ResumePoint | undefined;
    if (state.stepInEpoch !== undefined) {
      const ranks = state.ranks ?? [];
      if (ranks.length !== this.worldSize) throw errors.checkpointWorldSize(state.path, state.epoch, state.stepInEpoch, ranks.length, this.worldSize);
      if (state.stepInEpoch >= this.stepsPerEpoch) {
        throw errors.checkpointMismatch(state.path, `it was saved after step ${state.stepInEpoch} of epoch ${state.epoch + 1}, and an epoch of this run has ${this.stepsPerEpoch} steps`);
      }
      const { buffers: own, ...progress } = ranks[this.rank];
      buffers = own;
      resumeAt = { epoch: state.epoch, step: state.stepInEpoch, progress };
    }
    store.write(state.params, buffers);
    this.adam.write(state.adam);
    this.step = state.step;
    this.resumeAt = resumeAt;
  }

  /**
   * A mid-epoch resume for a rank whose checkpoint lives on another machine (rank 0's): after rank
   * 0's weights and optimizer state reached it, it takes its own BN statistics and epoch sums as
   * rank 0 read them from the checkpoint, and the next trainEpoch(epoch) continues after `step`.
   */
  async resumeRank(point: { epoch: number; step: number; progress: RankEpochProgress }, from: string): Promise<void> {
    const { buffers, ...progress } = point.progress;
    const specs = this.model.store.bufferSpecs;
    if (progress.rank !== this.rank) throw errors.internal(`rank ${this.rank} was given rank ${progress.rank}'s mid-epoch progress`);
    const sizes = specs.map((s) => s.shape.reduce((a, b) => a * b, 1));
    if (buffers.length !== specs.length || buffers.some((b, i) => b.length !== sizes[i])) {
      throw errors.checkpointMismatch(from, `rank ${this.rank}'s BN statistics have ${buffers.length} tensors of sizes ${buffers.map((b) => b.length).join(',')}, this model has ${specs.length}`);
    }
    if (point.step >= this.stepsPerEpoch) throw errors.checkpointMismatch(from, `it was saved after step ${point.step} of epoch ${point.epoch + 1}, and an epoch of this run has ${this.stepsPerEpoch} steps`);
    this.model.store.write((await this.model.store.read()).params, buffers);
    this.resumeAt = { epoch: point.epoch, step: point.step, progress };
  }

  /**
   * Trains epoch `epoch` (0-based) on this rank's shard: from its first step, or after the step a
   * restored mid-epoch checkpoint left it at. The epoch's order (seed, epoch) and augmentation
   * (seed, epoch, sample) are functions of their keys, not streams, so skipping the steps already
   * done needs no RNG state.
   */
  async trainEpoch(epoch: number, opts: TrainEpochOptions = {}): Promise<EpochStats> {
    const { batchSize, seed, milestones, gamma } = this.config.train;
    const resume = this.resumeAt;
    // Training another epoch than the restored one would silently give other weights: a bug.
    if (resume && resume.epoch !== epoch) throw errors.internal(`a checkpoint from the middle of epoch ${resume.epoch + 1} was restored, and then epoch ${epoch + 1} was asked for`);
    const every = opts.checkpointEvery;
    if (every !== undefined && (!Number.isInteger(every) || every < 1)) {
      throw errors.invalidArgument('checkpointEvery', `${every} is not a whole number of steps >= 1`, 'set train.checkpointEvery (--checkpoint-every) to 1 or more, or leave it out');
    }
    this.resumeAt = undefined;
    const lr = learningRate(this.config.train.lr, epoch, milestones, gamma);
    const order = epochIndices({ n: this.splits.train.length, epoch, seed, shuffle: true, rank: this.rank, worldSize: this.worldSize });
    const steps = this.stepsPerEpoch;
    const first = resume?.step ?? 0;
    const before = resume?.progress;
    const stats: EpochStats = {
      epoch,
      steps,
      startStep: first,
      images: before?.images ?? 0,
      seconds: 0,
      computeMs: before?.computeMs ?? 0,
      reduceMs: before?.reduceMs ?? 0,
      waitMs: before?.waitMs ?? 0,
      lossSums: before ? { ...before.lossSums } : { total: 0, expression: 0, segmentation: 0, components: 0 },
      skipped: before ? [...before.skipped] : [],
    };
    const secondsBefore = before?.seconds ?? 0;
    const t0 = performance.now();
    const elapsed = () => secondsBefore + (performance.now() - t0) / 1000;
    let s = first;
    // Batches start at a multiple of batchSize, so they are the same batches as an uninterrupted epoch's.
    const batches = this.pipeline.batches(this.splits.train, order.subarray(first * batchSize, steps * batchSize), {
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
      opts.onStep?.({ epoch: epoch + 1, step: s, steps, loss: l?.total ?? NaN, images: stats.images, seconds: elapsed() });
      if (every !== undefined && opts.onCheckpointDue && s % every === 0 && s < steps) {
        this.boundary = { epoch, step: s, stats, secondsBefore, t0 };
        try {
          await opts.onCheckpointDue(s);
        } finally {
          this.boundary = undefined;
        }
      }
      if (opts.signal?.aborted) throw errors.aborted(`training (epoch ${epoch + 1}, step ${s})`);
    }
    stats.seconds = elapsed();
    return stats;
  }

  /** Evaluates this rank's share of the test split (every worldSize-th image, no padding). */
  async evaluate(): Promise<EvalResult & { skipped: SkippedFile[] }> {
    const shard: Sample[] = this.splits.test.filter((_, i) => i % this.worldSize === this.rank);
    return evaluateModel(this.model, this.pipeline, shard, this.config.train.batchSize);
  }

  /** Everything an end-of-epoch checkpoint holds, read from the engine (`epoch`: epochs completed). */
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

  /**
   * This rank's share of the epoch so far, at a checkpoint hook: what a worker group gathers from
   * every rank for rank 0's midEpochState (plain arrays and numbers: it crosses processes as is).
   */
  async rankProgress(): Promise<RankEpochProgress> {
    const b = this.atBoundary('rankProgress');
    const { stats } = b;
    return {
      rank: this.rank,
      buffers: (await this.model.store.read()).buffers,
      images: stats.images,
      lossSums: { ...stats.lossSums },
      skipped: [...stats.skipped],
      seconds: b.secondsBefore + (performance.now() - b.t0) / 1000,
      computeMs: stats.computeMs,
      reduceMs: stats.reduceMs,
      waitMs: stats.waitMs,
    };
  }

  /**
   * A mid-epoch checkpoint's state, at a checkpoint hook: weights and Adam state (the same on every
   * rank) from this one, and `ranks`, every rank's rankProgress() in rank order; one process
   * (worldSize 1) may leave it out. saveCheckpoint writes it as epoch-NNNN-step-SSSSSS.
   */
  async midEpochState(ranks?: RankEpochProgress[]): Promise<TrainingState> {
    const b = this.atBoundary('midEpochState');
    const all = ranks ?? (this.worldSize === 1 ? [await this.rankProgress()] : undefined);
    if (all?.length !== this.worldSize || all.some((r, i) => r.rank !== i)) {
      throw errors.internal(`midEpochState needs every rank's progress in rank order (0..${this.worldSize - 1}), got ${all ? `ranks ${all.map((r) => r.rank).join(', ')}` : 'none'}`);
    }
    const { params } = await this.model.store.read();
    return {
      epoch: b.epoch,
      stepInEpoch: b.step,
      step: this.step,
      rng: { seed: this.config.train.seed, nextEpoch: b.epoch },
      model: this.model.config,
      params,
      buffers: all[0].buffers,
      ranks: all,
      adam: await this.adam.read(),
      worldSize: this.worldSize,
      config: this.config,
    };
  }

  private atBoundary(what: string): AtBoundary {
    if (!this.boundary) throw errors.internal(`${what}() is only meaningful inside trainEpoch's onCheckpointDue, between two steps`);
    return this.boundary;
  }

  async close(): Promise<void> {
    await this.pipeline.close();
    this.adam.dispose();
    this.model.dispose();
  }
}
