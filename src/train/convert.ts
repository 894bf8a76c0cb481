/**
 * `slfer-dist convert`: a whole SLFER model between PyTorch and slfer-dist.
 * - From torch: a state dict of the reference model (scripts/peers/slfer_torch_model.py), either
 *   torch.save format, becomes a run folder with one checkpoint (epoch 0) that eval, predict and
 *   `train --resume` accept. What a state dict cannot say (input size, data, schedule) comes from a
 *   config and flags.
 * - To torch: a checkpoint becomes a state dict that the reference model loads with
 *   load_state_dict(strict=True).
 * Both directions match every tensor by name and shape, strictly: a missing or extra tensor is an
 * error, as in PyTorch's strict loading.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { mergeConfig, resolveConfig, type ConfigInput } from '../config.js';
import { errors } from '../errors.js';
import { variantParts, VARIANTS, type Variant } from '../model/config.js';
import { SlferModel } from '../model/slfer.js';
import { fromTorch, layoutOf, torchShape, toTorch } from '../torch/slfer-layout.js';
import { readStateDict, type StateDict, type TorchTensor } from '../torch/state-dict.js';
import { writeStateDict } from '../torch/write-torch-file.js';
import { replaceDirAtomic } from '../util/atomic.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { modelConfigOf } from './model-config.js';
import { RUN_FILES, writeRunConfig } from './run-files.js';

const FROM_TORCH_HINT = 'pass a state dict of scripts/peers/slfer_torch_model.py (torch.save(model.state_dict(), path)); for a torchvision ResNet18 use --pretrained instead';

/** Which Table 1 variant a reference state dict is, from the modules it has. */
function variantOf(sd: StateDict, file: string): Variant {
  const has = (k: string) => sd.has(k);
  if (!has('stem.0.weight')) throw errors.weightsMismatch(file, `it is not a SLFER state dict (no stem.0.weight; first keys: ${[...sd.keys()].slice(0, 5).join(', ')})`, FROM_TORCH_HINT);
  const parts = { se: has('layer1.0.bn2.1.fc1.weight'), st: has('fuse.0.weight'), ct: has('ct.0.weight') };
  const v = VARIANTS.find((name) => JSON.stringify(variantParts(name)) === JSON.stringify(parts));
  if (!v) throw errors.weightsMismatch(file, `its modules (SE ${parts.se}, ST ${parts.st}, CT ${parts.ct}) are none of the Table 1 variants`, FROM_TORCH_HINT);
  return v;
}

export interface FromTorchOptions {
  /** Run folder to create; must not hold a run. */
  out: string;
  /** The rest of the run config (data, loss, schedule); model.variant and width come from the file. */
  config?: ConfigInput;
}

export interface FromTorchResult {
  runDir: string;
  checkpoint: string;
  variant: Variant;
  tensors: number;
}

export async function convertFromTorch(file: string, o: FromTorchOptions): Promise<FromTorchResult> {
  const sd = await readStateDict(file);
  const variant = variantOf(sd, file);
  const stem = sd.get('stem.0.weight')!;
  const width = stem.shape[0] / 64;
  const config = resolveConfig(mergeConfig(o.config ?? {}, { model: { variant, width, pretrained: undefined } }), 'convert');
  const model = new SlferModel(modelConfigOf(config), config.train.seed);
  try {
    const specs = { params: model.store.paramSpecs, buffers: model.store.bufferSpecs };
    const layout = layoutOf(specs, 'slfer', model.parts.se);
    const values = { params: [] as Float32Array[], buffers: [] as Float32Array[] };
    const used = new Set<string>();
    const missing: string[] = [];
    for (const t of layout) {
      const src = sd.get(t.key!);
      if (!src) {
        missing.push(t.key!);
        continue;
      }
      const want = torchShape(t.shape);
      if (src.shape.join('x') !== want.join('x')) throw errors.weightsMismatch(file, `${t.key} has shape [${src.shape}], the ${variant} model at width ${width} needs [${want}]`, FROM_TORCH_HINT);
      used.add(t.key!);
      values[t.group].push(fromTorch(src, t.shape));
    }
    const unused = [...sd.keys()].filter((k) => !used.has(k) && !k.endsWith('num_batches_tracked'));
    if (missing.length || unused.length) {
      throw errors.weightsMismatch(file, `it is not a complete ${variant} model: ${missing.length ? `missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}` : ''}${missing.length && unused.length ? '; ' : ''}${unused.length ? `unexpected ${unused.slice(0, 5).join(', ')}` : ''}`, FROM_TORCH_HINT);
    }
    const runDir = resolve(o.out);
    if (existsSync(runDir) && readdirSync(runDir).length > 0) throw errors.invalidArgument('--out', `${runDir} is not empty`, 'choose a new folder for the converted run');
    // Built beside its destination, then renamed into place: a failure leaves no half-written run.
    const tmp = `${runDir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(dirname(runDir), { recursive: true });
    try {
      writeRunConfig(tmp, config);
      const zeros = values.params.map((p) => new Float32Array(p.length));
      saveCheckpoint(
        join(tmp, RUN_FILES.checkpoints),
        { epoch: 0, step: 0, rng: { seed: config.train.seed, nextEpoch: 0 }, model: model.config, params: values.params, buffers: values.buffers, adam: { t: 0, m: zeros, v: zeros.map((z) => z.slice()) }, config },
        specs,
      );
      replaceDirAtomic(tmp, runDir);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    return { runDir, checkpoint: join(runDir, RUN_FILES.checkpoints, 'epoch-0000'), variant, tensors: used.size };
  } finally {
    model.dispose();
  }
}

export interface ToTorchResult {
  file: string;
  tensors: number;
  variant: Variant;
}

/** A checkpoint as the reference model's state dict (with num_batches_tracked = the steps taken). */
export function convertToTorch(checkpoint: string, file: string): ToTorchResult {
  const state = loadCheckpoint(checkpoint);
  const m = state.model;
  if (m.width !== 1 || m.seReduction !== 16 || m.numExpressions !== 7 || m.numParts !== 8) {
    throw errors.weightsMismatch(
      state.path,
      `the PyTorch reference model is ResNet18 at width 1 with SE reduction 16, 7 expressions and 8 parts; this checkpoint has width ${m.width}, SE reduction ${m.seReduction}`,
      'convert a checkpoint of a width-1 model (the paper network)',
    );
  }
  const se = variantParts(m.variant).se;
  const sd = new Map<string, TorchTensor>();
  for (const t of layoutOf(state.specs, 'slfer', se)) {
    const values = state[t.group][t.index];
    sd.set(t.key!, toTorch(values, t.shape));
    if (t.name.endsWith('.movingVar')) sd.set(t.key!.replace(/running_var$/, 'num_batches_tracked'), { dtype: 'int64', shape: [], data: BigInt64Array.of(BigInt(state.step)) });
  }
  writeStateDict(resolve(file), sd);
  return { file: resolve(file), tensors: sd.size, variant: m.variant };
}
