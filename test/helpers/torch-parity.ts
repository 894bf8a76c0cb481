/**
 * The integer formulas scripts/peers/torch_fixtures.py uses for the parity input, labels and masks,
 * computed identically here (32-bit products are exact in both languages).
 */
export const hash32 = (i: number) => Math.imul(i, 2654435761) >>> 0;

/** [B, S, S, 3] NHWC, the values the script puts at [b, c, y, x] of its NCHW tensor. */
export function parityInput(b: number, s: number, salt = 0): Float32Array {
  const out = new Float32Array(b * s * s * 3);
  for (let n = 0; n < b; n++)
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < s; y++)
        for (let x = 0; x < s; x++) {
          const i = ((n * 3 + c) * s + y) * s + x;
          out[((n * s + y) * s + x) * 3 + c] = (((hash32(i + salt) >>> 8) % 2001) - 1000) / 1000;
        }
  return out;
}

export function parityTargets(b: number, s: number, parts = 8, expressions = 7) {
  return {
    labels: Int32Array.from({ length: b }, (_, i) => hash32(i + 7) % expressions),
    masks: Uint8Array.from({ length: b * s * s }, (_, i) => (hash32(i + 11) >>> 4) % parts),
    components: Float32Array.from({ length: b * parts }, (_, i) => (hash32(i + 13) >>> 3) % 2),
  };
}

/** What the script stores per tensor (torch layout, flattened): norm, dot with a ±1 pattern, sampled entries. */
export interface Summary {
  shape: number[];
  norm: number;
  dot: number;
  samples: Record<string, number>;
}

export function summarise(values: Float32Array | Float64Array): { norm: number; dot: number } {
  let sq = 0;
  let dot = 0;
  for (let i = 0; i < values.length; i++) {
    sq += values[i] * values[i];
    dot += (hash32(i + 3) >>> 5) % 2 ? values[i] : -values[i];
  }
  return { norm: Math.sqrt(sq), dot };
}

/**
 * The largest error of `ours` against a summary, each relative to the tensor's norm: the norm, the
 * dot product, and every sampled entry (an entry's error over the norm of the whole tensor, since a
 * single entry may be near zero).
 */
export function summaryError(ours: Float32Array, ref: Summary): number {
  const s = summarise(ours);
  const scale = Math.max(ref.norm, 1e-30);
  let worst = Math.abs(s.norm - ref.norm) / scale;
  worst = Math.max(worst, Math.abs(s.dot - ref.dot) / scale);
  const rms = scale / Math.sqrt(ours.length);
  for (const [i, v] of Object.entries(ref.samples)) worst = Math.max(worst, Math.abs(ours[Number(i)] - v) / Math.max(Math.abs(v), rms));
  return worst;
}
