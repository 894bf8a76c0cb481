/**
 * The committed PyTorch reference for BiSeNet (scripts/peers/bisenet_reference.py writes it): the
 * weight files, the outputs, and the input formula, computed here exactly as the script does.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const TORCH_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'torch');
export const BISENET_ZIP = join(TORCH_FIXTURES, 'bisenet-strided.pth');
export const BISENET_LEGACY = join(TORCH_FIXTURES, 'bisenet-strided-legacy.pth');

export interface HeadReference {
  /** float64 logits at the sampled pixels, pixel-major (19 per pixel), base64. */
  sampled: string;
  torchFloat32MaxAbsError: number;
  /** The float64 argmax at every pixel, row-major, base64 bytes. */
  argmax: string;
  classSums: number[];
  maxAbs: number;
  minTop2Gap: number;
  classCounts: number[];
  /** Pixels whose two best logits are within 1e-3: [pixel, gap, best class, second class]. */
  nearTies: [number, number, number, number][];
}

export interface BisenetReference {
  height: number;
  width: number;
  classes: number;
  sampledPixels: number[];
  heads: Record<'out' | 'out16' | 'out32', HeadReference>;
}

export const readReference = (): BisenetReference => JSON.parse(readFileSync(join(TORCH_FIXTURES, 'bisenet-reference.json'), 'utf8')) as BisenetReference;

export const float64s = (b64: string): Float64Array => {
  const b = Buffer.from(b64, 'base64');
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
};
export const bytes = (b64: string): Uint8Array => new Uint8Array(Buffer.from(b64, 'base64'));

const SALT = 21;
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** lowbias32, as mix32 in the script. */
export function mix32(v: number): number {
  v >>>= 0;
  v ^= v >>> 16;
  v = Math.imul(v, 0x7feb352d) >>> 0;
  v ^= v >>> 15;
  v = Math.imul(v, 0x846ca68b) >>> 0;
  v ^= v >>> 16;
  return v >>> 0;
}

export function pixelByte(c: number, y: number, x: number): number {
  const k = c + 3 * SALT;
  const coarse = mix32(0x1000 + k * 4096 + Math.floor(y / 8) * 64 + Math.floor(x / 8)) & 0xff;
  const fine = mix32(0x9000000 + k * 1_000_000 + y * 1000 + x) & 0x3f;
  return (Math.floor((coarse * 3) / 4) + fine) & 0xff;
}

/** The script's formula_input() as NHWC: (byte/255 − mean)/std in float64, rounded once to float32. */
export function formulaInput(height: number, width: number): Float32Array {
  const out = new Float32Array(height * width * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) out[(y * width + x) * 3 + c] = (pixelByte(c, y, x) / 255 - MEAN[c]) / STD[c];
  return out;
}
