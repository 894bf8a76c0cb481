/**
 * Which dataset indices each rank visits in an epoch, with PyTorch DistributedSampler semantics:
 * every rank draws the same permutation from (seed, epoch), then takes every worldSize-th index
 * starting at its rank, so ranks see disjoint shards that together cover the epoch.
 *
 * Shard sizes must be equal (every rank runs the same number of steps, or all-reduce deadlocks):
 * - dropLast = false: the permuted list is padded by repeating it from its start (cyclically, when
 *   n < worldSize) up to the next multiple of worldSize, so a few samples are seen twice per epoch;
 * - dropLast = true: the tail past the last multiple of worldSize is dropped, so a few samples are
 *   not seen this epoch (a different few each epoch when shuffling).
 */
import { errors } from '../errors.js';
import { Rng } from '../util/rng.js';

/** Rng stream id of the epoch permutation ("SAMP"), distinct from every other consumer of the seed. */
const SAMPLER_STREAM = 0x53414d50;

export interface EpochIndicesOptions {
  n: number;
  epoch: number;
  seed: number;
  shuffle: boolean;
  rank?: number;
  worldSize?: number;
  dropLast?: boolean;
}

/** Number of indices each rank receives per epoch. */
export function samplesPerRank(n: number, worldSize: number, dropLast: boolean): number {
  return dropLast ? Math.floor(n / worldSize) : Math.ceil(n / worldSize);
}

export function epochIndices({
  n,
  epoch,
  seed,
  shuffle,
  rank = 0,
  worldSize = 1,
  dropLast = false,
}: EpochIndicesOptions): Int32Array {
  if (!Number.isInteger(worldSize) || worldSize < 1 || !Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw errors.invalidArgument('sampler', `rank ${rank} of world size ${worldSize} is not valid`, 'ranks run 0..worldSize-1');
  }
  const order = shuffle ? new Rng(seed, epoch, SAMPLER_STREAM).permutation(n) : Int32Array.from({ length: n }, (_, i) => i);
  const perRank = n === 0 ? 0 : samplesPerRank(n, worldSize, dropLast);
  const out = new Int32Array(perRank);
  // Position rank + k*worldSize of the padded (or truncated) list; padding wraps to the start.
  for (let k = 0; k < perRank; k++) out[k] = order[(rank + k * worldSize) % n];
  return out;
}

/** Optimizer steps per epoch on each rank; dropLast is the sampler's rule, dropLastBatch the batcher's. */
export function stepsPerEpoch(n: number, worldSize: number, batchSize: number, dropLastBatch: boolean, dropLast = false): number {
  const perRank = samplesPerRank(n, worldSize, dropLast);
  return dropLastBatch ? Math.floor(perRank / batchSize) : Math.ceil(perRank / batchSize);
}
