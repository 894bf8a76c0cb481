import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { releaseEngine, selectBackend } from '../../src/engine/backend.js';
import { BISENET_CLASSES, readBiSeNet, type BiSeNetOutputs } from '../../src/parse/bisenet.js';
import { BISENET_LEGACY, BISENET_ZIP, bytes, float64s, formulaInput, readReference } from './bisenet-fixture.js';

// slfer-dist's BiSeNet against PyTorch's (scripts/peers/bisenet_reference.py, float64 forward) on
// the same weights, read from files torch.save wrote in both formats, and the same formula input.
// cpu is tfjs's reference engine (and the fused-convolution path); wasm is what parse runs on a
// CPU (oneDNN convolutions where the native kernels are built); webgpu when SLFER_WEBGPU_TESTS=1.
const ref = readReference();
const { height: H, width: W } = ref;
const TOLERANCE = 1e-4;
const engines: ('cpu' | 'wasm' | 'webgpu')[] = ['cpu', 'wasm'];
if (process.env.SLFER_WEBGPU_TESTS === '1' || process.env.SLFER_REQUIRE_WEBGPU === '1') engines.push('webgpu');

afterAll(() => releaseEngine());

/** Largest |ours − PyTorch| over the sampled logits, relative to PyTorch's largest |logit|. */
function sampledError(ours: Float32Array, head: keyof BiSeNetOutputs): { rel: number; abs: number } {
  const expected = float64s(ref.heads[head].sampled);
  let abs = 0;
  ref.sampledPixels.forEach((p, k) => {
    for (let c = 0; c < BISENET_CLASSES; c++) abs = Math.max(abs, Math.abs(ours[p * BISENET_CLASSES + c] - expected[k * BISENET_CLASSES + c]));
  });
  return { abs, rel: abs / ref.heads[head].maxAbs };
}

function argmax(logits: Float32Array): Uint8Array {
  const out = new Uint8Array(logits.length / BISENET_CLASSES);
  for (let p = 0; p < out.length; p++) {
    let best = 0;
    for (let c = 1; c < BISENET_CLASSES; c++) if (logits[p * BISENET_CLASSES + c] > logits[p * BISENET_CLASSES + best]) best = c;
    out[p] = best;
  }
  return out;
}

describe.each(engines)('BiSeNet on %s against PyTorch', (engine) => {
  for (const file of [BISENET_ZIP, BISENET_LEGACY]) {
    it(`gives PyTorch's logits (relative error < 1e-4) and argmax with the weights of ${file.split('/').pop()}`, async () => {
      const e = await selectBackend(engine);
      console.log(`engine: ${e.backend}${e.convolutions ? ` (convolutions: ${e.convolutions})` : ''}`);
      const model = await readBiSeNet(file);
      const input = formulaInput(H, W);
      const outs = tf.tidy(() => model.forward(tf.tensor4d(input, [1, H, W, 3]), true));
      const logits = {} as Record<keyof BiSeNetOutputs, Float32Array>;
      for (const head of ['out', 'out16', 'out32'] as const) {
        expect(outs[head].shape).toEqual([1, H, W, BISENET_CLASSES]);
        logits[head] = (await outs[head].data()) as Float32Array;
        outs[head].dispose();
      }
      model.dispose();

      for (const head of ['out', 'out16', 'out32'] as const) {
        const { rel, abs } = sampledError(logits[head], head);
        console.log(`${engine} ${file.split('/').pop()} ${head}: max abs error ${abs.toExponential(2)}, relative ${rel.toExponential(2)}`);
        expect(rel, head).toBeLessThan(TOLERANCE);
        // Every pixel, through the per-class sums: |Σ ours − Σ PyTorch| against Σ|logit| ≤ pixels·max.
        const sums = new Float64Array(BISENET_CLASSES);
        logits[head].forEach((v, i) => (sums[i % BISENET_CLASSES] += v));
        ref.heads[head].classSums.forEach((s, c) => expect(Math.abs(sums[c] - s) / (H * W * ref.heads[head].maxAbs), `${head} class ${c}`).toBeLessThan(TOLERANCE));
      }

      // The argmax at every pixel. Where PyTorch's two best logits are closer than twice our error
      // at the sampled pixels (a near tie, listed in the fixture), either of the two is right to
      // float32 precision; with these weights that excludes no pixel unless the error grows.
      const expected = bytes(ref.heads.out.argmax);
      const ours = argmax(logits.out);
      const abs = sampledError(logits.out, 'out').abs;
      const ties = new Map(ref.heads.out.nearTies.map(([p, gap, , second]) => [p, { gap, second }]));
      const mismatched = [...expected.keys()].filter((p) => ours[p] !== expected[p]);
      for (const p of mismatched) {
        const tie = ties.get(p);
        expect(tie && tie.gap < 2 * abs && ours[p] === tie.second, `pixel ${p}: ours ${ours[p]}, PyTorch ${expected[p]}`).toBe(true);
      }
      console.log(`${engine}: argmax differs at ${mismatched.length} of ${H * W} pixels (smallest top-2 gap ${ref.heads.out.minTop2Gap.toExponential(2)})`);
      expect(new Set(ours).size).toBeGreaterThan(10); // a diverse map, so the comparison means something
    });
  }
});
