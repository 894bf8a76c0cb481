/** Tensors as a torch checkpoint holds them: typed storages, and views into them by offset and strides. */

export const TORCH_DTYPES = ['float32', 'float16', 'bfloat16', 'float64', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'] as const;
export type TorchDType = (typeof TORCH_DTYPES)[number];

export type TorchData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

/** A contiguous, row-major tensor. float16 and bfloat16 keep their raw bits (Uint16Array). */
export interface TorchTensor {
  dtype: TorchDType;
  shape: number[];
  data: TorchData;
}

/** The legacy storage class names that name a dtype in the pickle, and their element sizes. */
export const STORAGE_TYPES: Readonly<Record<string, { dtype: TorchDType; bytes: number }>> = {
  FloatStorage: { dtype: 'float32', bytes: 4 },
  HalfStorage: { dtype: 'float16', bytes: 2 },
  BFloat16Storage: { dtype: 'bfloat16', bytes: 2 },
  DoubleStorage: { dtype: 'float64', bytes: 8 },
  LongStorage: { dtype: 'int64', bytes: 8 },
  IntStorage: { dtype: 'int32', bytes: 4 },
  ShortStorage: { dtype: 'int16', bytes: 2 },
  CharStorage: { dtype: 'int8', bytes: 1 },
  ByteStorage: { dtype: 'uint8', bytes: 1 },
  BoolStorage: { dtype: 'bool', bytes: 1 },
};

export const storageTypeOf = (dtype: TorchDType): string => Object.entries(STORAGE_TYPES).find(([, t]) => t.dtype === dtype)![0];
export const ELEMENT_BYTES = Object.fromEntries(Object.values(STORAGE_TYPES).map((t) => [t.dtype, t.bytes])) as Readonly<Record<TorchDType, number>>;

/** One storage: its dtype, element count, and (once read) its little-endian bytes. */
export class Storage {
  constructor(
    readonly dtype: TorchDType,
    readonly numel: number,
    readonly key: string,
    private readonly load: () => Uint8Array,
  ) {}

  private cached?: TorchData;

  /** Elements as a typed array (bytes copied once, so alignment never matters). */
  elements(): TorchData {
    if (!this.cached) {
      const raw = this.load();
      const bytes = ELEMENT_BYTES[this.dtype];
      if (raw.length !== this.numel * bytes) throw new Error(`storage ${this.key} holds ${raw.length} bytes, its header says ${this.numel} elements of ${bytes} bytes`);
      // A copy (new Uint8Array, not slice: a Buffer's slice is a view into its shared pool).
      this.cached = typedArray(this.dtype, new Uint8Array(raw).buffer, this.numel);
    }
    return this.cached;
  }
}

function typedArray(dtype: TorchDType, buf: ArrayBuffer, n: number): TorchData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf, 0, n);
    case 'float64':
      return new Float64Array(buf, 0, n);
    case 'int64':
      return new BigInt64Array(buf, 0, n);
    case 'int32':
      return new Int32Array(buf, 0, n);
    case 'int16':
      return new Int16Array(buf, 0, n);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(buf, 0, n);
    case 'int8':
      return new Int8Array(buf, 0, n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buf, 0, n);
  }
}

/**
 * torch._utils._rebuild_tensor_v2's view, materialised as a contiguous tensor. Every index the
 * view can address is checked against the storage first: a damaged file is an error, not a read
 * out of bounds.
 */
export function viewOf(storage: Storage, offset: unknown, size: unknown, stride: unknown): TorchTensor {
  const ints = (v: unknown, what: string) => {
    if (!Array.isArray(v) || !v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) throw new Error(`tensor ${what} ${String(v)} is not a tuple of non-negative integers`);
    return v as number[];
  };
  const shape = ints(size, 'size');
  const strides = ints(stride, 'stride');
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) throw new Error(`tensor storage offset ${String(offset)} is not a non-negative integer`);
  if (strides.length !== shape.length) throw new Error(`tensor size ${shape} and stride ${strides} differ in rank`);
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel > 2 ** 31) throw new Error(`tensor of ${numel} elements is too large`);
  const off = offset as number;
  if (numel > 0) {
    const last = shape.reduce((m, n, d) => m + (n - 1) * strides[d], off);
    if (last >= storage.numel) throw new Error(`a view of size ${shape}, stride ${strides}, offset ${off} reaches element ${last} of a ${storage.numel}-element storage`);
  }
  const src = storage.elements();
  const contiguous = strides.every((s, d) => shape[d] === 1 || s === shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const data = contiguous ? (src.slice(off, off + numel) as TorchData) : gather(src, shape, strides, off, numel);
  return { dtype: storage.dtype, shape, data };
}

/** The elements a strided view addresses (shape, strides and offset in elements), in row-major order. */
export function gather(src: TorchData, shape: readonly number[], strides: readonly number[], offset: number, numel: number): TorchData {
  const out = new (src.constructor as new (n: number) => TorchData)(numel);
  const idx = new Array<number>(shape.length).fill(0);
  let at = offset;
  for (let i = 0; i < numel; i++) {
    (out as Float32Array)[i] = (src as Float32Array)[at];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) {
        at += strides[d];
        break;
      }
      at -= (shape[d] - 1) * strides[d];
      idx[d] = 0;
    }
  }
  return out;
}

/** Any tensor's values as float32 (half and bfloat16 widened exactly; integers converted). */
export function toFloat32(t: TorchTensor): Float32Array {
  const d = t.data;
  if (d instanceof Float32Array) return d;
  if (d instanceof Uint16Array) return t.dtype === 'bfloat16' ? bfloat16ToFloat32(d) : float16ToFloat32(d);
  if (d instanceof BigInt64Array) return Float32Array.from(d, (v) => Number(v));
  return Float32Array.from(d as ArrayLike<number>);
}

function bfloat16ToFloat32(bits: Uint16Array): Float32Array {
  const u = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return new Float32Array(u.buffer);
}

function float16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    out[i] = exp === 0 ? sign * frac * 2 ** -24 : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

export const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
