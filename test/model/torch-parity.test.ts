import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Batch } from '../../src/data/types.js';
import { selectBackend, type BackendRequest } from '../../src/engine/backend.js';
import { torchKey, toTorch } from '../../src/torch/slfer-layout.js';
import { convertFromTorch } from '../../src/train/convert.js';
import { loadTrainedModel } from '../../src/train/load-model.js';
import { computeGradients, finishStep, readLosses } from '../../src/train/step.js';
import { parityInput, parityTargets, summaryError, type Summary } from '../helpers/torch-parity.js';

// The proof that slfer-dist's SLFER is the paper's network: PyTorch's reference model
// (scripts/peers/slfer_torch_model.py) and ours compute the same function on the same weights.
// The weights are PyTorch's own torch.save files; PyTorch's outputs, loss and gradients on a
// formula-defined batch were committed by scripts/peers/torch_fixtures.py. PARITY_DEBUG=1 prints
// the errors measured (the README quotes them).
const FIX = join(import.meta.dirname, '../fixtures/torch');
interface Fixture {
  batch: number;
  size: number;
  salt: number;
  lambdaSeg: number;
  lambdaCls: number;
  eval: { expression: number[]; components: number[]; segmentationSamples: Record<string, number>; segmentationNorm: number; segmentationMaxAbs: number };
  loss: { total: number; expression: number; segmentation: number; components: number };
  gradients: Record<string, Summary>;
  runningStats: Record<string, Summary>;
}
const fx = JSON.parse(readFileSync(join(FIX, 'slfer-parity.json'), 'utf8')) as Fixture;
const tmp = mkdtempSync(join(tmpdir(), 'slfer-parity-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const relMax = (ours: ArrayLike<number>, ref: number[]) => {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(ours[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return err / scale;
};

function parityBatch(): Batch {
  const t = parityTargets(fx.batch, fx.size);
  return { size: fx.batch, inputSize: fx.size, images: parityInput(fx.batch, fx.size, fx.salt), ...t, ids: [], skipped: [], waitMs: 0 };
}

// webgpu (lavapipe here, a GPU elsewhere) when asked, as the other webgpu tests are.
const webgpu = process.env.SLFER_WEBGPU_TESTS === '1' || process.env.SLFER_REQUIRE_WEBGPU === '1';
describe.each<[string, BackendRequest]>([
  ['cpu', 'cpu'],
  ['wasm', 'wasm'],
  ...(webgpu ? [['webgpu', 'webgpu'] as [string, BackendRequest]] : []),
])('SLFER (proposed, width 1) against PyTorch on %s', (_, backend) => {
  beforeAll(async () => {
    await selectBackend(backend);
  });

  describe.each(['zip', 'legacy'])('weights from the %s-format file', (format) => {
    let runDir: string;
    beforeAll(async () => {
      runDir = (await convertFromTorch(join(FIX, `slfer-proposed.${format}.pth`), { out: join(tmp, `${backend}-${format}`), config: { model: { inputSize: fx.size } } })).runDir;
    });

    it('gives the same three heads in eval mode (relative error < 1e-4)', async () => {
      const { model } = loadTrainedModel(runDir);
      const images = tf.tensor4d(parityInput(fx.batch, fx.size, fx.salt), [fx.batch, fx.size, fx.size, 3]);
      const out = model.forward(images, { training: false });
      images.dispose();
      const expression = await out.expression.data();
      const components = await out.components!.data();
      const seg = await out.segmentation!.data();
      if (process.env.PARITY_DEBUG) console.log(backend, format, 'eval', relMax(expression, fx.eval.expression), relMax(components, fx.eval.components));
      expect(relMax(expression, fx.eval.expression)).toBeLessThan(1e-4);
      expect(relMax(components, fx.eval.components)).toBeLessThan(1e-4);
      const idx = Object.keys(fx.eval.segmentationSamples).map(Number);
      expect(relMax(idx.map((i) => seg[i]), Object.values(fx.eval.segmentationSamples))).toBeLessThan(1e-4);
      let sq = 0;
      for (const v of seg) sq += v * v;
      expect(Math.abs(Math.sqrt(sq) - fx.eval.segmentationNorm) / fx.eval.segmentationNorm).toBeLessThan(1e-4);
      tf.dispose([out.expression, out.components, out.segmentation]);
      model.dispose();
    });

    it('takes the same training step: loss terms, every gradient and the BN statistics (< 1e-3)', async () => {
      const { model } = loadTrainedModel(runDir);
      const r = computeGradients(model, parityBatch(), { lambdaSeg: fx.lambdaSeg, lambdaCls: fx.lambdaCls, topN: 4 });
      const grads = await Promise.all(r.grads.map((g) => g.data() as Promise<Float32Array>));
      r.grads.forEach((g) => g.dispose());
      const losses = await readLosses(r.losses);
      for (const k of ['total', 'expression', 'segmentation', 'components'] as const) {
        expect(Math.abs(losses[k]! - fx.loss[k]) / fx.loss[k], k).toBeLessThan(1e-4);
      }
      const specs = model.store.paramSpecs;
      expect(specs.length).toBe(Object.keys(fx.gradients).length);
      const errors = specs.map((s, i) => {
        const key = torchKey(s.name, 'slfer', true)!;
        return { key, err: summaryError(toTorch(grads[i], s.shape).data as Float32Array, fx.gradients[key]) };
      });
      const worst = errors.reduce((a, b) => (b.err > a.err ? b : a));
      if (process.env.PARITY_DEBUG) console.log(backend, format, 'worst gradient', worst.key, worst.err, 'loss', Math.max(...(['total', 'expression', 'segmentation', 'components'] as const).map((k) => Math.abs(losses[k]! - fx.loss[k]) / fx.loss[k])));
      expect(worst.err, `worst gradient: ${worst.key}`).toBeLessThan(1e-3);

      finishStep(model, r.bnStats);
      const buffers = await model.store.read();
      const bufferErrors = model.store.bufferSpecs.map((s, i) => summaryError(buffers.buffers[i], fx.runningStats[torchKey(s.name, 'slfer', true)!]));
      expect(Math.max(...bufferErrors)).toBeLessThan(1e-3);
      model.dispose();
    });
  });
});
