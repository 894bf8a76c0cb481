/**
 * `--pretrained`: a PyTorch ResNet18 (torchvision names) starts SLFER's backbone, as the paper
 * starts from MS-Celeb-1M. Tensors are matched by name and checked by shape; what the checkpoint
 * lacks keeps its initialisation and is listed, as is what it has and SLFER does not use.
 */
import * as tf from '@tensorflow/tfjs';
import { errors } from '../errors.js';
import type { SlferModel } from '../model/slfer.js';
import { fromTorch, layoutOf, torchShape } from '../torch/slfer-layout.js';
import { readStateDict } from '../torch/state-dict.js';
import { sha256File } from '../util/sha256-file.js';

export interface PretrainedReport {
  file: string;
  sha256: string;
  /** Tensors copied into the backbone. */
  loaded: number;
  /** Backbone tensors the file does not have (they keep their initialisation). */
  missing: string[];
  /** Tensors of the file SLFER has no place for (an identity classifier, DREAM's `feature`). */
  unused: string[];
  /** What the file looks like, when that changes what the user should set. */
  note?: string;
}

export async function loadPretrained(model: SlferModel, file: string): Promise<PretrainedReport> {
  if (model.config.width !== 1) {
    throw errors.weightsMismatch(file, `a pretrained ResNet18 fits width 1 only, and this model has width ${model.config.width}`, 'drop --width (or model.width) to train from the pretrained backbone, or drop --pretrained');
  }
  const sd = await readStateDict(file);
  if (!sd.has('conv1.weight') || !sd.has('layer1.0.conv1.weight')) {
    throw errors.weightsMismatch(
      file,
      `it has no torchvision ResNet18 keys (conv1.weight, layer1.0.conv1.weight); its first keys are ${[...sd.keys()].slice(0, 5).join(', ')}`,
      sd.has('stem.0.weight') ? 'this is a whole SLFER model: turn it into a checkpoint with `slfer-dist convert FILE --out DIR` and continue from it with --resume' : 'pass a ResNet18 state dict with torchvision names (resnet18_msceleb.pth, ijba_res18_naive.pth.tar, torchvision.models.resnet18().state_dict())',
    );
  }
  const store = model.store;
  const used = new Set<string>();
  const missing: string[] = [];
  const updates: { name: string; values: Float32Array; shape: number[] }[] = [];
  for (const t of layoutOf({ params: store.paramSpecs, buffers: store.bufferSpecs }, 'torchvision', false)) {
    if (!t.key) continue; // SE blocks and the heads: not in a ResNet18
    const src = sd.get(t.key);
    if (!src) {
      missing.push(t.key);
      continue;
    }
    const want = torchShape(t.shape);
    if (src.shape.join('x') !== want.join('x')) {
      throw errors.weightsMismatch(file, `${t.key} has shape [${src.shape}], SLFER's ${t.name} needs [${want}]`, 'pass a ResNet18 (not a ResNet34/50) checkpoint with torchvision names');
    }
    used.add(t.key);
    updates.push({ name: t.name, values: fromTorch(src, t.shape), shape: t.shape });
  }
  // Only a complete match is written: a refused file leaves the model as it was.
  tf.tidy(() => {
    for (const u of updates) store.get(u.name).assign(tf.tensor(u.values, u.shape, 'float32'));
  });
  const unused = [...sd.keys()].filter((k) => !used.has(k) && !k.endsWith('num_batches_tracked'));
  return {
    file,
    sha256: await sha256File(file),
    loaded: used.size,
    missing,
    unused,
    note: sd.has('feature.weight')
      ? "this looks like DREAM's ijba_res18_naive (it has a `feature` layer): it was trained on [0, 1] inputs without mean/std; set data.mean [0, 0, 0] and data.std [1, 1, 1] in the config"
      : undefined,
  };
}

/** The lines a run log shows for a loaded backbone. */
export function formatPretrained(r: PretrainedReport): string[] {
  const list = (xs: string[]) => (xs.length === 0 ? 'none' : xs.length <= 6 ? xs.join(', ') : `${xs.slice(0, 6).join(', ')} and ${xs.length - 6} more`);
  return [
    `pretrained: ${r.loaded} tensors from ${r.file} (sha256 ${r.sha256.slice(0, 12)}); SE blocks and heads keep their initialisation`,
    `  missing from the file: ${list(r.missing)}`,
    `  in the file, unused: ${list(r.unused)}`,
    ...(r.note ? [`  note: ${r.note}`] : []),
  ];
}
