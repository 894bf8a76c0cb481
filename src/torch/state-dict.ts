/**
 * The state dict inside a checkpoint file: what `--pretrained`, `convert` and `parse --weights`
 * read. Training scripts wrap it in many ways; the common ones are unwrapped here.
 */
import { errors } from '../errors.js';
import { readTorchFile, TensorRef } from './read-torch-file.js';
import type { PyValue } from './pickle.js';
import type { TorchTensor } from './tensor.js';

export { toFloat32, type TorchDType, type TorchTensor } from './tensor.js';

export type StateDict = Map<string, TorchTensor>;

/** Keys under which training scripts keep the weights (`torch.save({'state_dict': ..., 'epoch': ...})`). */
const WRAPPERS = ['state_dict', 'model_state_dict', 'model', 'net', 'network', 'params'];

/** DataParallel/DDP's `module.` prefix and similar ones a wrapper adds to every key. */
const PREFIXES = ['module.', 'model.', '_orig_mod.'];

export async function readStateDict(file: string): Promise<StateDict> {
  const { root } = readTorchFile(file);
  const dict = findStateDict(root, file);
  const out: StateDict = new Map();
  try {
    for (const [k, v] of dict) if (v instanceof TensorRef) out.set(String(k), v.materialize());
  } catch (e) {
    throw errors.torchFileInvalid(file, (e as Error).message, e);
  }
  return stripPrefix(out);
}

function tensorCount(m: Map<PyValue, PyValue>): number {
  let n = 0;
  for (const v of m.values()) if (v instanceof TensorRef) n++;
  return n;
}

function findStateDict(root: PyValue, file: string): Map<PyValue, PyValue> {
  if (!(root instanceof Map)) throw errors.torchFileInvalid(file, `it holds a ${Array.isArray(root) ? 'list' : typeof root}, not a dict of tensors`);
  for (const key of WRAPPERS) {
    const inner = root.get(key);
    if (inner instanceof Map && tensorCount(inner) > 0) return inner;
  }
  if (tensorCount(root) > 0) return root;
  throw errors.torchFileInvalid(
    file,
    `it holds no tensors under any of ${WRAPPERS.join(', ')} nor at its top level (top-level keys: ${[...root.keys()].slice(0, 12).join(', ')})`,
  );
}

/** Strips one wrapper prefix that every key carries; repeated (`module.module.`) it is stripped again. */
export function stripPrefix(sd: StateDict): StateDict {
  for (;;) {
    const keys = [...sd.keys()];
    const p = PREFIXES.find((prefix) => keys.length > 0 && keys.every((k) => k.startsWith(prefix)));
    if (!p) return sd;
    sd = new Map(keys.map((k) => [k.slice(p.length), sd.get(k)!]));
  }
}
