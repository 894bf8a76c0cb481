import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { errors } from '../errors.js';
import type { ModelConfig } from '../model/config.js';
import { size, type ParamSpec } from '../model/params.js';
import { fsyncPath, replaceDirAtomic, writeFileAtomic } from '../util/atomic.js';

export const CHECKPOINT_FORMAT = 'slfer-dist-checkpoint';
export const CHECKPOINT_VERSION = 1;

/** Everything needed to continue a run exactly or to evaluate it. */
export interface TrainingState {
  /** Epochs completed. Training resumes at this epoch index. */
  epoch: number;
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
  tensors: TensorEntry[];
  bytes: number;
  sha256: string;
}

export const epochDirName = (epoch: number) => `epoch-${String(epoch).padStart(4, '0')}`;

/**
 * Writes `<checkpointsDir>/epoch-NNNN/` (tensors.bin + manifest.json with its SHA-256) into a temp
 * folder first and renames it into place, then updates `latest.json`: a crash or Ctrl-C leaves the
 * previous checkpoint and pointer untouched.
 */
export function saveCheckpoint(
  checkpointsDir: string,
  state: TrainingState,
  specs: { params: ParamSpec[]; buffers: ParamSpec[] },
  opts: { keepLast?: number; best?: boolean } = {},
): string {
  mkdirSync(checkpointsDir, { recursive: true });
  const entries: TensorEntry[] = [];
  const chunks: Float32Array[] = [];
  let offset = 0;
  const add = (group: TensorEntry['group'], list: Float32Array[], s: ParamSpec[]) =>
    list.forEach((values, i) => {
      if (values.length !== size(s[i].shape)) throw new Error(`${group} ${s[i].name}: ${values.length} values for shape ${s[i].shape}`);
      entries.push({ group, name: s[i].name, shape: s[i].shape, offset, length: values.length });
      chunks.push(values);
      offset += values.length * 4;
    });
  add('param', state.params, specs.params);
  add('buffer', state.buffers, specs.buffers);
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
    version: CHECKPOINT_VERSION,
    createdAt: new Date().toISOString(),
    epoch: state.epoch,
    step: state.step,
    rng: state.rng,
    model: state.model,
    adamT: state.adam.t,
    testAccuracy: state.testAccuracy,
    worldSize: state.worldSize,
    config: state.config,
    tensors: entries,
    bytes: blob.length,
    sha256: createHash('sha256').update(blob).digest('hex'),
  };
  const name = epochDirName(state.epoch);
  const tmp = join(checkpointsDir, `.${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeFileSync(join(tmp, 'tensors.bin'), blob);
  fsyncPath(join(tmp, 'tensors.bin'));
  writeFileSync(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 1));
  fsyncPath(join(tmp, 'manifest.json'));
  const dest = join(checkpointsDir, name);
  replaceDirAtomic(tmp, dest);
  const pointer = JSON.stringify({ epoch: state.epoch, path: name, testAccuracy: state.testAccuracy }) + '\n';
  writeFileAtomic(join(checkpointsDir, 'latest.json'), pointer);
  if (opts.best) writeFileAtomic(join(checkpointsDir, 'best.json'), pointer);
  if (opts.keepLast) pruneCheckpoints(checkpointsDir, opts.keepLast);
  return dest;
}

/** Deletes all but the newest `keep` epoch folders, never the one best.json names. */
function pruneCheckpoints(dir: string, keep: number): void {
  const best = readPointer(join(dir, 'best.json'));
  const epochs = readdirSync(dir)
    .filter((n) => /^epoch-\d{4,}$/.test(n))
    .sort();
  for (const n of epochs.slice(0, Math.max(0, epochs.length - keep))) {
    if (n !== best) rmSync(join(dir, n), { recursive: true, force: true });
  }
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
  if (manifest.format !== CHECKPOINT_FORMAT || manifest.version !== CHECKPOINT_VERSION) {
    throw errors.checkpointCorrupt(dir, `not a ${CHECKPOINT_FORMAT} v${CHECKPOINT_VERSION} manifest`);
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
  for (const e of manifest.tensors) {
    // Copy out of the file buffer: Float32Array views need 4-byte alignment.
    const values = new Float32Array(e.length);
    new Uint8Array(values.buffer).set(blob.subarray(e.offset, e.offset + e.length * 4));
    groups[e.group].values.push(values);
    groups[e.group].specs.push({ name: e.name, shape: e.shape, init: { kind: 'const', value: 0 } });
  }
  return {
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
