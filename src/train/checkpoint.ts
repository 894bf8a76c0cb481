import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { SkippedFile } from '../data/types.js';
import { errors } from '../errors.js';
import type { ModelConfig } from '../model/config.js';
import { size, type ParamSpec } from '../model/params.js';
import { fsyncPath, replaceDirAtomic, writeFileAtomic } from '../util/atomic.js';

export const CHECKPOINT_FORMAT = 'slfer-dist-checkpoint';
/**
 * The newest manifest version this code reads. v1: end-of-epoch checkpoints. v2: v1 plus the
 * mid-epoch fields (stepInEpoch, ranks, per-rank buffers). End-of-epoch checkpoints are still
 * written as v1, byte for byte the old layout, so every release reads them; only mid-epoch ones are
 * v2, so a release that predates them refuses one instead of taking it for a finished epoch.
 */
export const CHECKPOINT_VERSION = 2;
const END_OF_EPOCH_VERSION = 1;

/**
 * What one rank has done of an epoch in progress: everything that differs between ranks mid-epoch
 * (weights and Adam state are the same on every rank; BN moving statistics are not until the
 * end-of-epoch average, since each rank's follow its own shard).
 */
export interface RankEpochProgress {
  /** Whose it is (checked against its position in TrainingState.ranks). */
  rank: number;
  /** This rank's BN moving statistics, in the model's buffer order. */
  buffers: Float32Array[];
  /** Images trained on so far this epoch, and their loss sums (each step's mean loss × its batch size). */
  images: number;
  lossSums: { total: number; expression: number; segmentation: number; components: number };
  skipped: SkippedFile[];
  /** Time spent on the epoch so far (not deterministic; kept so the epoch's img/s counts all of it). */
  seconds: number;
  computeMs: number;
  reduceMs: number;
  waitMs: number;
}

/** Everything needed to continue a run exactly or to evaluate it. */
export interface TrainingState {
  /** Epochs completed. Training resumes at this epoch index (at step stepInEpoch of it, mid-epoch). */
  epoch: number;
  /**
   * Mid-epoch checkpoints only: steps of epoch index `epoch` (the one in progress) already taken,
   * 1 ≤ stepInEpoch < steps per epoch. Absent: an end-of-epoch checkpoint.
   */
  stepInEpoch?: number;
  /**
   * Mid-epoch checkpoints only: every rank's progress in the epoch, in rank order (length
   * worldSize). ranks[0].buffers are `buffers`; rank r resumes with ranks[r].buffers.
   */
  ranks?: RankEpochProgress[];
  /** Optimizer steps taken. */
  step: number;
  /** All randomness derives from (seed, epoch, sample): this is the whole RNG state. */
  rng: { seed: number; nextEpoch: number };
  model: ModelConfig;
  params: Float32Array[];
  buffers: Float32Array[];
  adam: { t: number; m: Float32Array[]; v: Float32Array[] };
  /** Test accuracy after this epoch, if evaluated. */
  testAccuracy?: number;
  /** Processes that trained it (1 for `train`): the data order and so the weights depend on it. */
  worldSize?: number;
  /** The run's full resolved config, so eval/predict/resume need nothing else. */
  config: unknown;
}

interface TensorEntry {
  group: 'param' | 'buffer' | 'adam.m' | 'adam.v';
  /** v2, buffers of ranks 1..worldSize-1 of a mid-epoch checkpoint; absent: rank 0's (the state's). */
  rank?: number;
  name: string;
  shape: number[];
  offset: number;
  length: number;
}

interface Manifest {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  createdAt: string;
  epoch: number;
  step: number;
  rng: TrainingState['rng'];
  model: ModelConfig;
  adamT: number;
  testAccuracy?: number;
  worldSize?: number;
  config: unknown;
  /** v2 only. */
  stepInEpoch?: number;
  /** v2 only: RankEpochProgress without its buffers (those are tensors with a `rank`). */
  ranks?: Omit<RankEpochProgress, 'buffers'>[];
  tensors: TensorEntry[];
  bytes: number;
  sha256: string;
}

export const epochDirName = (epoch: number) => `epoch-${String(epoch).padStart(4, '0')}`;

/**
 * A checkpoint's folder name: `epoch-NNNN` after NNNN epochs, `epoch-NNNN-step-SSSSSS` after NNNN
 * epochs and SSSSSS steps of the next. Both count what is done, so names sort in training order
 * (epoch-0001 < epoch-0001-step-000040 < epoch-0002).
 */
export const checkpointDirName = (epoch: number, stepInEpoch?: number) =>
  stepInEpoch === undefined ? epochDirName(epoch) : `${epochDirName(epoch)}-step-${String(stepInEpoch).padStart(6, '0')}`;

export interface CheckpointName {
  name: string;
  epoch: number;
  /** Present for a mid-epoch checkpoint. */
  stepInEpoch?: number;
}

export function parseCheckpointName(name: string): CheckpointName | undefined {
  const m = /^epoch-(\d{4,})(?:-step-(\d{6,}))?$/.exec(name);
  if (!m) return undefined;
  return { name, epoch: Number(m[1]), ...(m[2] === undefined ? {} : { stepInEpoch: Number(m[2]) }) };
}

/**
 * The checkpoint folders in `checkpointsDir`, oldest first: by epochs done, then steps done of the
 * next (an end-of-epoch checkpoint has done none of it).
 */
export function listCheckpoints(checkpointsDir: string): CheckpointName[] {
  if (!existsSync(checkpointsDir)) return [];
  const done = (c: CheckpointName) => c.stepInEpoch ?? 0;
  return readdirSync(checkpointsDir)
    .map(parseCheckpointName)
    .filter((c): c is CheckpointName => c !== undefined)
    .sort((a, b) => a.epoch - b.epoch || done(a) - done(b));
}

/**
 * Writes `<checkpointsDir>/<checkpointDirName>/` (tensors.bin + manifest.json with its SHA-256) into
 * a temp folder first and renames it into place, then updates `latest.json`: a crash or Ctrl-C
 * leaves the previous checkpoint and pointer untouched. A mid-epoch state (stepInEpoch set) is
 * written as v2 with every rank's buffers; `best` is for end-of-epoch checkpoints only.
 */
export function saveCheckpoint(
  checkpointsDir: string,
  state: TrainingState,
  specs: { params: ParamSpec[]; buffers: ParamSpec[] },
  opts: { keepLast?: number; best?: boolean } = {},
): string {
  const mid = state.stepInEpoch !== undefined;
  if (mid) assertMidEpochState(state, !!opts.best);
  mkdirSync(checkpointsDir, { recursive: true });
  const entries: TensorEntry[] = [];
  const chunks: Float32Array[] = [];
  let offset = 0;
  const add = (group: TensorEntry['group'], list: Float32Array[], s: ParamSpec[], rank?: number) => {
    if (list.length !== s.length) throw errors.internal(`checkpoint: ${list.length} ${group} tensors${rank === undefined ? '' : ` of rank ${rank}`} for a model with ${s.length}`);
    list.forEach((values, i) => {
      if (values.length !== size(s[i].shape)) throw new Error(`${group} ${s[i].name}: ${values.length} values for shape ${s[i].shape}`);
      entries.push({ group, ...(rank === undefined ? {} : { rank }), name: s[i].name, shape: s[i].shape, offset, length: values.length });
      chunks.push(values);
      offset += values.length * 4;
    });
  };
  add('param', state.params, specs.params);
  add('buffer', state.buffers, specs.buffers);
  // Rank 0's buffers are the state's own; the other ranks' follow, tagged with their rank.
  state.ranks?.slice(1).forEach((r, i) => add('buffer', r.buffers, specs.buffers, i + 1));
  add('adam.m', state.adam.m, specs.params);
  add('adam.v', state.adam.v, specs.params);
  const blob = Buffer.allocUnsafe(offset);
  let o = 0;
  for (const c of chunks) {
    Buffer.from(c.buffer, c.byteOffset, c.byteLength).copy(blob, o);
    o += c.byteLength;
  }
  const manifest: Manifest = {
    format: CHECKPOINT_FORMAT,
    version: mid ? CHECKPOINT_VERSION : END_OF_EPOCH_VERSION,
    createdAt: new Date().toISOString(),
    epoch: state.epoch,
    step: state.step,
    rng: state.rng,
    model: state.model,
    adamT: state.adam.t,
    testAccuracy: state.testAccuracy,
    worldSize: state.worldSize,
    config: state.config,
    // Undefined fields vanish in JSON: an end-of-epoch manifest keeps exactly the v1 fields.
    stepInEpoch: state.stepInEpoch,
    ranks: state.ranks?.map(({ buffers: _, ...r }) => r),
    tensors: entries,
    bytes: blob.length,
    sha256: createHash('sha256').update(blob).digest('hex'),
  };
  const name = checkpointDirName(state.epoch, state.stepInEpoch);
  const tmp = join(checkpointsDir, `.${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeFileSync(join(tmp, 'tensors.bin'), blob);
  fsyncPath(join(tmp, 'tensors.bin'));
  writeFileSync(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 1));
  fsyncPath(join(tmp, 'manifest.json'));
  const dest = join(checkpointsDir, name);
  replaceDirAtomic(tmp, dest);
  const pointer = JSON.stringify({ epoch: state.epoch, stepInEpoch: state.stepInEpoch, path: name, testAccuracy: state.testAccuracy }) + '\n';
  writeFileAtomic(join(checkpointsDir, 'latest.json'), pointer);
  if (opts.best) writeFileAtomic(join(checkpointsDir, 'best.json'), pointer);
  if (opts.keepLast) pruneCheckpoints(checkpointsDir, opts.keepLast);
  return dest;
}

/** A mid-epoch state the caller built wrong is a bug: said before anything is written. */
function assertMidEpochState(state: TrainingState, best: boolean): void {
  const worldSize = state.worldSize ?? 1;
  const ranks = state.ranks ?? [];
  const problem = [
    (!Number.isInteger(state.stepInEpoch) || state.stepInEpoch! < 1) && `stepInEpoch ${state.stepInEpoch} is not a step count >= 1`,
    ranks.length !== worldSize && `${ranks.length} ranks' progress for world size ${worldSize}`,
    ranks.some((r, i) => r.rank !== i) && `ranks in the order ${ranks.map((r) => r.rank).join(', ')}, not in rank order`,
    best && 'only end-of-epoch checkpoints can be the best (they alone are evaluated)',
  ].find((p) => typeof p === 'string');
  if (problem) throw errors.internal(`mid-epoch checkpoint: ${problem}`);
}

/**
 * Keeps the newest `keep` end-of-epoch checkpoints and the best one, as before mid-epoch ones
 * existed. A mid-epoch checkpoint only leads back into its epoch, so once a later epoch has ended
 * it goes; of the rest, the newest `keep` stay. Mid-epoch checkpoints thus never evict an
 * end-of-epoch one. The one latest.json names stays whatever its age (a resume from an older
 * checkpoint writes "older" names than those it abandons).
 */
function pruneCheckpoints(dir: string, keep: number): void {
  const spare = new Set([readPointer(join(dir, 'best.json')), readPointer(join(dir, 'latest.json'))]);
  const all = listCheckpoints(dir);
  const ends = all.filter((c) => c.stepInEpoch === undefined);
  const newestEnd = ends.at(-1)?.epoch ?? -1;
  const mids = all.filter((c) => c.stepInEpoch !== undefined && c.epoch >= newestEnd);
  const drop = [
    ...ends.slice(0, Math.max(0, ends.length - keep)),
    ...all.filter((c) => c.stepInEpoch !== undefined && c.epoch < newestEnd),
    ...mids.slice(0, Math.max(0, mids.length - keep)),
  ];
  for (const c of drop) if (!spare.has(c.name)) rmSync(join(dir, c.name), { recursive: true, force: true });
}

function readPointer(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { path: string }).path;
  } catch {
    return undefined;
  }
}

/**
 * Finds the checkpoint folder a user means: an epoch folder itself, a checkpoints/ folder or a run
 * folder (then the newest, or the best with `which: 'best'`).
 */
export function resolveCheckpoint(path: string, which: 'latest' | 'best' = 'latest'): string {
  const p = resolve(path);
  if (existsSync(join(p, 'manifest.json'))) return p;
  for (const dir of [join(p, 'checkpoints'), p]) {
    const name = readPointer(join(dir, `${which}.json`)) ?? readPointer(join(dir, 'latest.json'));
    if (name && existsSync(join(dir, name, 'manifest.json'))) return join(dir, name);
  }
  throw errors.checkpointNotFound(path);
}

/** Reads and verifies a checkpoint (format, checksum, sizes). */
export function loadCheckpoint(path: string): TrainingState & { path: string; specs: { params: ParamSpec[]; buffers: ParamSpec[] } } {
  const dir = resolveCheckpoint(path);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  } catch (e) {
    throw errors.checkpointCorrupt(dir, `manifest.json cannot be parsed (${(e as Error).message})`);
  }
  if (manifest.format !== CHECKPOINT_FORMAT || !Number.isInteger(manifest.version) || manifest.version < 1 || manifest.version > CHECKPOINT_VERSION) {
    const newer = manifest.format === CHECKPOINT_FORMAT && manifest.version > CHECKPOINT_VERSION;
    throw errors.checkpointCorrupt(dir, newer ? `its manifest is version ${manifest.version}, newer than this slfer-dist reads (up to ${CHECKPOINT_VERSION}): update slfer-dist` : `not a ${CHECKPOINT_FORMAT} manifest of version 1..${CHECKPOINT_VERSION}`);
  }
  const binPath = join(dir, 'tensors.bin');
  if (!existsSync(binPath) || statSync(binPath).size !== manifest.bytes) {
    throw errors.checkpointCorrupt(dir, `tensors.bin is missing or not ${manifest.bytes} bytes`);
  }
  const blob = readFileSync(binPath);
  const sha = createHash('sha256').update(blob).digest('hex');
  if (sha !== manifest.sha256) throw errors.checkpointCorrupt(dir, 'tensors.bin does not match its SHA-256 in manifest.json');
  const groups: Record<TensorEntry['group'], { values: Float32Array[]; specs: ParamSpec[] }> = {
    param: { values: [], specs: [] },
    buffer: { values: [], specs: [] },
    'adam.m': { values: [], specs: [] },
    'adam.v': { values: [], specs: [] },
  };
  const rankBuffers: Float32Array[][] = [];
  for (const e of manifest.tensors) {
    // Copy out of the file buffer: Float32Array views need 4-byte alignment.
    const values = new Float32Array(e.length);
    new Uint8Array(values.buffer).set(blob.subarray(e.offset, e.offset + e.length * 4));
    if (e.rank !== undefined) {
      (rankBuffers[e.rank] ??= []).push(values);
      continue;
    }
    groups[e.group].values.push(values);
    groups[e.group].specs.push({ name: e.name, shape: e.shape, init: { kind: 'const', value: 0 } });
  }
  const state = {
    path: dir,
    epoch: manifest.epoch,
    step: manifest.step,
    rng: manifest.rng,
    model: manifest.model,
    params: groups.param.values,
    buffers: groups.buffer.values,
    adam: { t: manifest.adamT, m: groups['adam.m'].values, v: groups['adam.v'].values },
    testAccuracy: manifest.testAccuracy,
    worldSize: manifest.worldSize,
    config: manifest.config,
    specs: { params: groups.param.specs, buffers: groups.buffer.specs },
  };
  if (manifest.version < 2 || manifest.stepInEpoch === undefined) return state;
  return { ...state, stepInEpoch: manifest.stepInEpoch, ranks: midEpochRanks(dir, manifest, groups.buffer.values, rankBuffers) };
}

/** A v2 manifest's per-rank progress, checked (a bad one is a damaged checkpoint, not a crash later). */
function midEpochRanks(dir: string, m: Manifest, buffers: Float32Array[], rankBuffers: Float32Array[][]): RankEpochProgress[] {
  const ranks = m.ranks;
  const n = m.worldSize ?? 1;
  const bad = (problem: string) => errors.checkpointCorrupt(dir, `mid-epoch manifest: ${problem}`);
  if (!Number.isInteger(m.stepInEpoch) || m.stepInEpoch! < 1) throw bad(`stepInEpoch ${m.stepInEpoch} is not a step count`);
  if (!Array.isArray(ranks) || ranks.length !== n) throw bad(`${Array.isArray(ranks) ? ranks.length : 'no'} ranks' progress for world size ${n}`);
  return ranks.map((r, i) => {
    if (r.rank !== i) throw bad(`ranks[${i}] holds rank ${r.rank}`);
    const own = i === 0 ? buffers : rankBuffers[i];
    if (own?.length !== buffers.length) throw bad(`rank ${i} has ${own?.length ?? 0} buffers, rank 0 ${buffers.length}`);
    // JSON has no NaN: a NaN loss sum (a diverged step) was written as null.
    const sum = (x: number | null) => (x === null ? NaN : x);
    const l = r.lossSums;
    return { ...r, lossSums: { total: sum(l.total), expression: sum(l.expression), segmentation: sum(l.segmentation), components: sum(l.components) }, buffers: own };
  });
}

/** Checks that a checkpoint's tensors are exactly the model's, by name, shape and order. */
export function assertSameLayout(path: string, model: { params: ParamSpec[]; buffers: ParamSpec[] }, ckpt: { params: ParamSpec[]; buffers: ParamSpec[] }): void {
  for (const group of ['params', 'buffers'] as const) {
    const a = model[group];
    const b = ckpt[group];
    if (a.length !== b.length) throw errors.checkpointMismatch(path, `the model has ${a.length} ${group}, the checkpoint ${b.length}`);
    a.forEach((s, i) => {
      if (s.name !== b[i].name || s.shape.join('x') !== b[i].shape.join('x')) {
        throw errors.checkpointMismatch(path, `${group}[${i}] is ${s.name} [${s.shape}] in the model but ${b[i].name} [${b[i].shape}] in the checkpoint`);
      }
    });
  }
}
