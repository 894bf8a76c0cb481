/**
 * Reads what torch.save wrote, in either of its formats (torch/serialization.py):
 * - zip (torch >= 1.6): `<dir>/data.pkl` refers to storages by persistent id, their bytes are
 *   `<dir>/data/<key>`;
 * - legacy (before 1.6, or `_use_new_zipfile_serialization=False`): five pickles in a row (magic
 *   number, protocol version, system info, the object, the storage keys), then each storage as an
 *   int64 element count and its bytes.
 * Only the globals a checkpoint of tensors needs are resolved (GLOBALS below); anything else is
 * refused by name before any of it could run.
 */
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import { errors } from '../errors.js';
import { PickleError, unpickle, type PyCallable, type PyValue } from './pickle.js';
import { ELEMENT_BYTES, STORAGE_TYPES, Storage, viewOf, type TorchTensor } from './tensor.js';

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/** A tensor the pickle described; read from its storage on first use (legacy storages come after the pickle). */
export class TensorRef {
  private value?: TorchTensor;
  constructor(
    private readonly storage: Storage,
    private readonly args: readonly PyValue[],
  ) {}
  get dtype() {
    return this.storage.dtype;
  }
  materialize(): TorchTensor {
    this.value ??= viewOf(this.storage, this.args[0], this.args[1], this.args[2]);
    return this.value;
  }
}

/** A numpy dtype as pickled (numpy.dtype('f8', False, True) then BUILD with its byte order). */
class NumpyDType {
  order = '<';
  constructor(readonly name: string) {}
}

const fn = (qualifiedName: string, call: (args: PyValue[]) => PyValue): PyCallable => ({ qualifiedName, call });
const markerOnly = (qualifiedName: string): PyCallable =>
  fn(qualifiedName, () => {
    throw new PickleError(`${qualifiedName} is only a type tag in a checkpoint and cannot be called`, qualifiedName);
  });

function tensorArgs(args: PyValue[]): PyValue[] {
  if (!(args[0] instanceof Storage)) throw new PickleError('a tensor is rebuilt from something that is not a storage');
  return args;
}

/** The allow-list: what a checkpoint of tensors, numbers and strings asks for, implemented as data. */
const GLOBALS: Record<string, PyCallable> = {
  'collections.OrderedDict': fn('collections.OrderedDict', (a) => new Map(Array.isArray(a[0]) ? (a[0] as [PyValue, PyValue][]) : [])),
  'torch._utils._rebuild_tensor_v2': fn('torch._utils._rebuild_tensor_v2', (a) => new TensorRef(tensorArgs(a)[0] as Storage, a.slice(1, 4))),
  'torch._utils._rebuild_tensor': fn('torch._utils._rebuild_tensor', (a) => new TensorRef(tensorArgs(a)[0] as Storage, a.slice(1, 4))),
  'torch._utils._rebuild_parameter': fn('torch._utils._rebuild_parameter', (a) => a[0]),
  'torch._utils._rebuild_parameter_with_state': fn('torch._utils._rebuild_parameter_with_state', (a) => a[0]),
  'torch.Size': fn('torch.Size', (a) => a[0]),
  // Python 3's protocol-2 pickles spell bytes as _codecs.encode(text, 'latin1').
  '_codecs.encode': fn('_codecs.encode', (a) => {
    if (typeof a[0] !== 'string' || (a[1] !== 'latin1' && a[1] !== 'latin-1')) throw new PickleError('_codecs.encode with anything but a latin1 string', '_codecs.encode');
    return Uint8Array.from(a[0], (c) => c.charCodeAt(0));
  }),
  // Training scripts often store a metric as a numpy scalar (best accuracy, epoch).
  'numpy.dtype': fn('numpy.dtype', (a) => new NumpyDType(String(a[0]))),
  'numpy.core.multiarray.scalar': fn('numpy.core.multiarray.scalar', numpyScalar),
  'numpy._core.multiarray.scalar': fn('numpy._core.multiarray.scalar', numpyScalar),
};
for (const name of Object.keys(STORAGE_TYPES)) GLOBALS[`torch.${name}`] = markerOnly(`torch.${name}`);

function numpyScalar(a: PyValue[]): number {
  const [dtype, raw] = a;
  if (!(dtype instanceof NumpyDType) || !(raw instanceof Uint8Array) || dtype.order === '>') throw new PickleError('a numpy scalar that is not little-endian data');
  const v = new DataView(new Uint8Array(raw).buffer);
  const readers: Record<string, [number, (o: number) => number]> = {
    f8: [8, (o) => v.getFloat64(o, true)],
    f4: [4, (o) => v.getFloat32(o, true)],
    i8: [8, (o) => Number(v.getBigInt64(o, true))],
    i4: [4, (o) => v.getInt32(o, true)],
    b1: [1, (o) => v.getUint8(o)],
  };
  const r = readers[dtype.name];
  if (!r || raw.length !== r[0]) throw new PickleError(`a numpy scalar of dtype ${dtype.name}`);
  return r[1](0);
}

function build(target: PyValue, state: PyValue): boolean {
  if (target instanceof Map) return true; // OrderedDict's instance dict (state_dict()'s _metadata): not needed
  if (target instanceof NumpyDType && Array.isArray(state) && typeof state[1] === 'string') {
    target.order = state[1];
    return true;
  }
  return false;
}

export interface TorchFile {
  format: 'zip' | 'legacy';
  /** The unpickled object: Maps, arrays, numbers, strings and TensorRefs. */
  root: PyValue;
}

/** Reads a torch.save file. Every failure is a SlferError naming `file`. */
export function readTorchFile(file: string): TorchFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw errors.torchFileInvalid(file, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, e);
  }
  try {
    if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) return { format: 'zip', root: readZip(bytes) };
    if (bytes.length >= 2 && bytes[0] === 0x80) return { format: 'legacy', root: readLegacy(bytes) };
    if (bytes.length > 262 && new TextDecoder().decode(bytes.subarray(257, 262)) === 'ustar') {
      throw new Error('it is a tar archive, the format of torch before 0.4: load it with an old PyTorch and save it again');
    }
    throw new Error('it is neither a zip (torch >= 1.6) nor a legacy (pickle) torch file');
  } catch (e) {
    if (e instanceof PickleError && e.global) throw errors.torchFileUnsafe(file, e.global);
    if ((e as { code?: string }).code?.startsWith('SLFER_')) throw e;
    throw errors.torchFileInvalid(file, (e as Error).message, e);
  }
}

function storageRef(pid: PyValue, storages: Map<string, Storage>, load: (key: string, dtype: Storage['dtype'], numel: number) => () => Uint8Array): Storage {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw new Error(`unknown persistent id ${describe(pid)}`);
  const [, type, key, , count] = pid as PyValue[];
  const typeName = (type as PyCallable | undefined)?.qualifiedName?.replace(/^torch\./, '');
  const t = typeName ? STORAGE_TYPES[typeName] : undefined;
  if (!t) throw new Error(`storage of unknown type ${describe(type)}`);
  if (typeof key !== 'string' || !Number.isSafeInteger(count) || (count as number) < 0) throw new Error(`malformed storage reference ${describe(pid)}`);
  if (pid[5] !== undefined && pid[5] !== null) throw new Error('it uses storage views (torch < 1.0): load it with PyTorch and save it again');
  let s = storages.get(key);
  if (!s) {
    s = new Storage(t.dtype, count as number, key, load(key, t.dtype, count as number));
    storages.set(key, s);
  } else if (s.dtype !== t.dtype || s.numel !== count) {
    throw new Error(`storage ${key} is referenced with two different types or sizes`);
  }
  return s;
}

const resolveGlobal = (module: string, name: string) => GLOBALS[`${module}.${name}`];

function readZip(bytes: Uint8Array): PyValue {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes);
  } catch (e) {
    throw new Error(`its zip container is damaged or truncated (${(e as Error).message})`);
  }
  const pkl = Object.keys(files)
    .filter((n) => n.endsWith('data.pkl') && n.split('/').length === 2)
    .sort()[0];
  if (!pkl) throw new Error('the zip holds no <dir>/data.pkl: it is a zip, but not one torch.save wrote');
  const dir = pkl.slice(0, -'data.pkl'.length);
  const order = files[`${dir}byteorder`];
  if (order && new TextDecoder().decode(order) !== 'little') throw new Error('it was saved on a big-endian machine');
  const storages = new Map<string, Storage>();
  const { value } = unpickle(files[pkl], 0, {
    resolveGlobal,
    build,
    persistentLoad: (pid) =>
      storageRef(pid, storages, (key) => () => {
        const data = files[`${dir}data/${key}`];
        if (!data) throw new Error(`storage ${key} is missing from the zip (${dir}data/${key})`);
        return data;
      }),
  });
  return value;
}

function readLegacy(bytes: Uint8Array): PyValue {
  const next = (at: number, opts: Partial<Parameters<typeof unpickle>[2]> = {}) => unpickle(bytes, at, { resolveGlobal: () => undefined, ...opts });
  const magic = next(0);
  if (magic.value !== LEGACY_MAGIC) throw new Error('it starts with a pickle, but not with torch\'s magic number');
  const protocol = next(magic.end);
  if (protocol.value !== LEGACY_PROTOCOL) throw new Error(`legacy protocol version ${String(protocol.value)}, expected ${LEGACY_PROTOCOL}`);
  const sys = next(protocol.end);
  if (sys.value instanceof Map && sys.value.get('little_endian') === false) throw new Error('it was saved on a big-endian machine');
  const storages = new Map<string, Storage>();
  const offsets = new Map<string, number>();
  const obj = next(sys.end, {
    resolveGlobal,
    build,
    persistentLoad: (pid) =>
      storageRef(pid, storages, (key, dtype, count) => () => {
        const at = offsets.get(key);
        if (at === undefined) throw new Error(`storage ${key} is not in the file's list of storages`);
        return bytes.subarray(at, at + count * ELEMENT_BYTES[dtype]);
      }),
  });
  const keys = next(obj.end);
  if (!Array.isArray(keys.value)) throw new Error('the list of storage keys is missing');
  // The storages follow in the order of that list: element count (int64), then the bytes.
  let pos = keys.end;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of keys.value as PyValue[]) {
    const s = storages.get(String(key));
    if (pos + 8 > bytes.length) throw new Error(`truncated: storage ${String(key)} is missing`);
    const count = Number(view.getBigInt64(pos, true));
    pos += 8;
    if (!s) throw new Error(`storage ${String(key)} is listed but no tensor refers to it`);
    if (count !== s.numel) throw new Error(`storage ${s.key} holds ${count} elements, the pickle says ${s.numel}`);
    const size = count * ELEMENT_BYTES[s.dtype];
    if (pos + size > bytes.length) throw new Error(`truncated: storage ${s.key} needs ${size} bytes at offset ${pos}, the file has ${bytes.length - pos}`);
    offsets.set(s.key, pos);
    pos += size;
  }
  return obj.value;
}

function describe(v: PyValue): string {
  try {
    return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x instanceof Map ? Object.fromEntries(x) : x))?.slice(0, 120) ?? String(v);
  } catch {
    return String(v);
  }
}
