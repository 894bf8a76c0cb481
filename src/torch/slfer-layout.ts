/**
 * Where each of slfer-dist's tensors lives in a PyTorch state dict, and how its layout differs:
 * - 'slfer': the whole model as scripts/peers/slfer_torch_model.py names it (the reference);
 * - 'torchvision': a torchvision resnet18's names, for the backbone only (the MS-Celeb-1M
 *   checkpoints the FER literature publishes).
 * Convolutions are [kh, kw, in, out] here and [out, in, kh, kw] in torch; linear layers [in, out]
 * here and [out, in] there; BatchNorm's gamma, beta, moving mean and variance are torch's weight,
 * bias, running_mean and running_var.
 */
import type { ParamSpec } from '../model/params.js';
import type { TorchTensor } from './tensor.js';
import { gather, toFloat32 } from './tensor.js';

export type TorchNaming = 'slfer' | 'torchvision';

const BN_FIELDS: Record<string, string> = { gamma: 'weight', beta: 'bias', movingMean: 'running_mean', movingVar: 'running_var' };

/** The reference model's Sequential indices (slfer_torch_model.py). */
const SLFER_MODULES: Record<string, string> = {
  'stem.conv': 'stem.0',
  'stem.bn': 'stem.1',
  'ect.fc1': 'ect.0',
  'ect.fc2': 'ect.2',
  'ect.fc3': 'ect.4',
  'ct.fc1': 'ct.0',
  'ct.fc2': 'ct.2',
  'st.fuse.conv': 'fuse.0',
  'st.fuse.bn': 'fuse.1',
  'st.up1.conv': 'decode.2',
  'st.up1.bn': 'decode.3',
  'st.up2.conv': 'decode.6',
  'st.up2.bn': 'decode.7',
  'st.up3.conv': 'decode.10',
  'st.up3.bn': 'decode.11',
  'st.classifier': 'decode.13',
};

/**
 * The torch key of one of our tensors, or undefined when that naming has no counterpart (the SE
 * blocks and heads in torchvision's resnet18). `se`: the model has SE blocks, which the reference
 * wraps with bn2 in a Sequential (bn2.0 is the BatchNorm, bn2.1 the SE block).
 */
export function torchKey(name: string, naming: TorchNaming, se: boolean): string | undefined {
  const dot = name.lastIndexOf('.');
  const module = name.slice(0, dot);
  const field = name.slice(dot + 1);
  const torchField = BN_FIELDS[field] ?? field;
  const block = /^(layer[1-4]\.[01])\.(.+)$/.exec(module);
  if (block) {
    const [, prefix, rest] = block;
    const sub: Record<string, string> = { conv1: 'conv1', bn1: 'bn1', conv2: 'conv2', bn2: naming === 'slfer' && se ? 'bn2.0' : 'bn2', 'down.conv': 'downsample.0', 'down.bn': 'downsample.1' };
    const se_ = /^se\.(fc[12])$/.exec(rest);
    if (se_) return naming === 'slfer' ? `${prefix}.bn2.1.${se_[1]}.${torchField}` : undefined;
    return sub[rest] ? `${prefix}.${sub[rest]}.${torchField}` : undefined;
  }
  if (naming === 'torchvision') return module === 'stem.conv' ? `conv1.${torchField}` : module === 'stem.bn' ? `bn1.${torchField}` : undefined;
  const m = SLFER_MODULES[module];
  return m ? `${m}.${torchField}` : undefined;
}

/** Torch's shape for one of ours: convolutions and linear layers transposed, the rest as they are. */
export function torchShape(shape: readonly number[]): number[] {
  if (shape.length === 4) return [shape[3], shape[2], shape[0], shape[1]];
  if (shape.length === 2) return [shape[1], shape[0]];
  return [...shape];
}

/** Our layout of a torch tensor (the caller has checked `t.shape` against torchShape(ours)). */
export function fromTorch(t: TorchTensor, ours: readonly number[]): Float32Array {
  return permute(toFloat32(t), t.shape, ours.length === 4 ? [2, 3, 1, 0] : ours.length === 2 ? [1, 0] : [0]);
}

/** Torch's layout of one of our tensors. */
export function toTorch(values: Float32Array, ours: readonly number[]): TorchTensor {
  const data = permute(values, ours, ours.length === 4 ? [3, 2, 0, 1] : ours.length === 2 ? [1, 0] : [0]);
  return { dtype: 'float32', shape: torchShape(ours), data };
}

/** x with its axes reordered: the output's axis k is the input's axis perm[k] (a strided read of x). */
function permute(x: Float32Array, shape: readonly number[], perm: number[]): Float32Array {
  if (shape.length <= 1) return Float32Array.from(x);
  const inStrides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  return gather(x, perm.map((p) => shape[p]), perm.map((p) => inStrides[p]), 0, x.length) as Float32Array;
}

/** Every tensor of ours (parameters, then buffers) with its torch key under a naming. */
export function layoutOf(specs: { params: ParamSpec[]; buffers: ParamSpec[] }, naming: TorchNaming, se: boolean) {
  return [...specs.params.map((s, i) => ({ ...s, group: 'params' as const, index: i })), ...specs.buffers.map((s, i) => ({ ...s, group: 'buffers' as const, index: i }))].map((s) => ({
    ...s,
    key: torchKey(s.name, naming, se),
  }));
}
