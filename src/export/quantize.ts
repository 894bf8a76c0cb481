import type * as tf from '@tensorflow/tfjs';
import { errors } from '../errors.js';

export const QUANTIZATIONS = ['float16', 'uint8'] as const;
export type Quantization = (typeof QUANTIZATIONS)[number];

/**
 * Weight quantisation in tfjs's own weights-manifest format: each entry keeps dtype float32 and
 * gains a `quantization` field ({dtype: 'float16'}, or {dtype: 'uint8', scale, min}: v = q·scale +
 * min), which tf.io.decodeWeights undoes on load, so any tfjs loader reads the model unchanged.
 */
export function quantizeWeights(specs: tf.io.WeightsManifestEntry[], data: ArrayBuffer, how: Quantization | undefined): { specs: tf.io.WeightsManifestEntry[]; data: Uint8Array } {
  if (!how) return { specs, data: new Uint8Array(data) };
  const out: Uint8Array[] = [];
  const outSpecs: tf.io.WeightsManifestEntry[] = [];
  let offset = 0;
  for (const spec of specs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.dtype !== 'float32' || spec.quantization) throw errors.internal(`weight ${spec.name}: cannot quantise a ${spec.dtype}${spec.quantization ? ', already quantised,' : ''} tensor`);
    const values = new Float32Array(data, offset, n);
    offset += 4 * n;
    if (how === 'float16') {
      const q = new Uint16Array(n);
      for (let i = 0; i < n; i++) q[i] = float16Bits(values[i]);
      out.push(new Uint8Array(q.buffer));
      outSpecs.push({ ...spec, quantization: { dtype: 'float16' } });
    } else {
      let min = Infinity;
      let max = -Infinity;
      for (const v of values) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      if (n === 0) min = max = 0;
      // A constant tensor (e.g. an untrained bias) keeps its value exactly: q = 0, v = min.
      const scale = max > min ? (max - min) / 255 : 1;
      const q = new Uint8Array(n);
      for (let i = 0; i < n; i++) q[i] = Math.round((values[i] - min) / scale);
      out.push(q);
      outSpecs.push({ ...spec, quantization: { dtype: 'uint8', scale, min } });
    }
  }
  const total = out.reduce((a, b) => a + b.length, 0);
  const joined = new Uint8Array(total);
  let at = 0;
  for (const b of out) {
    joined.set(b, at);
    at += b.length;
  }
  return { specs: outSpecs, data: joined };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits of a float32, rounded to nearest even (overflow to ±Inf, subnormals kept). */
export function float16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf, NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m; // a carry into the exponent field is the correct smallest normal
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}
