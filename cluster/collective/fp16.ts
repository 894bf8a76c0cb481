/**
 * IEEE 754 binary16 ("half") <-> binary32 conversion, for all-reduce with fp16 on the wire.
 * Rounding is round-to-nearest-even, as hardware and numpy do: values past the largest half
 * (65504) round to infinity from 65520 on, tiny values go to subnormals and then to signed zero,
 * NaN stays NaN (quiet, payload's top bits kept) and infinities stay infinite.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Half bits of a float32 given as its raw bits, rounded to nearest even. */
function halfFromBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const u = x & 0x7fffffff;
  if (u >= 0x38800000 && u < 0x47800000) {
    // The common case, a normal half (2^-14 <= |x| < 2^16): rebias the exponent and round to
    // nearest even in one integer add (F. Giesen's float_to_half_fast3_rtne); a carry out of the
    // mantissa correctly bumps the exponent, up to infinity.
    return sign | ((u - 0x37fff001 + ((u >>> 13) & 1)) >>> 13);
  }
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // inf / NaN
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00; // overflow
  if (e >= 1) {
    // normal half: keep 10 mantissa bits, round on the 13 dropped; a carry may ripple into the
    // exponent, which is right (up to the next binade, or to infinity).
    let h = (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h++;
    return sign | h;
  }
  if (e < -10) return sign; // below half the smallest subnormal (2^-25): zero
  // subnormal half: the value is m * 2^-24; shift the 24-bit significand into place
  const m = mant | 0x800000;
  const shift = 14 - e; // 14..24
  let h = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1) !== 0)) h++;
  return sign | h;
}

/** The float32 value of half bits (exact: every half is a float32). */
function floatFromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) {
    if (mant === 0) return sign * Infinity;
    u32[0] = ((h & 0x8000) << 16) | 0x7f800000 | (mant << 13); // NaN with its payload
    return f32[0];
  }
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Rounds one number to the nearest half; returns its bits. */
export function toHalf(value: number): number {
  f32[0] = value;
  return halfFromBits(u32[0]);
}

/** The value of one half given by its bits. */
export function fromHalf(bits: number): number {
  return DECODE[bits & 0xffff];
}

/** All 65536 halves as float32: decoding is one table lookup (256 KiB, built once). */
const DECODE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = floatFromHalf(h);
  return t;
})();

/** dst[i] = half(src[i]) for i in [0, src.length). */
export function encodeHalf(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const n = src.length;
  for (let i = 0; i < n; i++) dst[i] = halfFromBits(bits[i]);
}

/** dst[i] = value of src[i]. */
export function decodeHalf(src: Uint16Array, dst: Float32Array): void {
  const n = src.length;
  const t = DECODE;
  for (let i = 0; i < n; i++) dst[i] = t[src[i]];
}

/** dst[i] += value of src[i]. */
export function addHalf(src: Uint16Array, dst: Float32Array): void {
  const n = src.length;
  const t = DECODE;
  for (let i = 0; i < n; i++) dst[i] += t[src[i]];
}
