import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { VARIANTS, type ModelConfig, type Variant } from '../../src/model/config.js';
import { upsample2x } from '../../src/model/layers.js';
import { SlferModel } from '../../src/model/slfer.js';
import { selectBackend } from '../../src/engine/backend.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

const cfg = (variant: Variant, inputSize: number, width = 0.125): ModelConfig => ({ variant, width, inputSize, seReduction: 16, numExpressions: 7, numParts: 8 });

describe('SLFER heads', () => {
  for (const size of [32, 64]) {
    it(`gives ECT [B,7], ST [B,${size},${size},8] and CT [B,8] at ${size}px`, () => {
      const model = new SlferModel(cfg('proposed', size), 1);
      const out = tf.tidy(() => {
        const o = model.forward(tf.randomNormal([2, size, size, 3]) as tf.Tensor4D, { training: true, bnBatchStats: new Map() });
        return [o.expression.shape, o.segmentation!.shape, o.components!.shape];
      });
      expect(out).toEqual([
        [2, 7],
        [2, size, size, 8],
        [2, 8],
      ]);
      model.dispose();
    });
  }

  it('runs only the backbone and ECT at inference', () => {
    const model = new SlferModel(cfg('proposed', 32), 1);
    const o = model.forward(tf.zeros([1, 32, 32, 3]) as tf.Tensor4D, { training: false }, 'expression');
    expect(o.expression.shape).toEqual([1, 7]);
    expect(o.segmentation).toBeUndefined();
    expect(o.components).toBeUndefined();
    model.dispose();
  });

  it('has the parts of each ablation variant and nothing else', () => {
    const names = (v: Variant) => new SlferModel(cfg(v, 32), 1).store.paramSpecs.map((p) => p.name);
    const has = (v: Variant, part: string) => names(v).some((n) => (part === 'se' ? n.includes('.se.') : n.startsWith(`${part}.`)));
    expect(VARIANTS.map((v) => [has(v, 'se'), has(v, 'st'), has(v, 'ct')])).toEqual([
      [false, false, false], // baseline
      [false, false, true], // ct
      [false, true, false], // st
      [false, true, true], // ct_st
      [true, true, true], // proposed
    ]);
  });

  it('has the paper network size at width 1 (13.7M parameters, as the PyTorch peer)', () => {
    const model = new SlferModel(cfg('proposed', 224, 1), 0);
    // 13,721,871 float32 parameters in slfer_torch_model.py.
    expect(model.store.paramCount).toBe(13_721_871);
    model.dispose();
  });

  it('initialises the same weights for the same seed and different ones for another', async () => {
    const a = new SlferModel(cfg('proposed', 32), 5);
    const b = new SlferModel(cfg('proposed', 32), 5);
    const c = new SlferModel(cfg('proposed', 32), 6);
    const [ra, rb, rc] = await Promise.all([a.store.read(), b.store.read(), c.store.read()]);
    expect(ra.params.map((x) => Array.from(x))).toEqual(rb.params.map((x) => Array.from(x)));
    expect(Array.from(ra.params[0])).not.toEqual(Array.from(rc.params[0]));
    [a, b, c].forEach((m) => m.dispose());
  });
});

describe('bilinear ×2 upsampling', () => {
  it('matches PyTorch align_corners=False: [1, 2] -> [1, 1.25, 1.75, 2]', () => {
    const y = upsample2x(tf.tensor4d([1, 2], [1, 1, 2, 1]));
    expect(y.shape).toEqual([1, 2, 4, 1]);
    expect(Array.from(y.dataSync())).toEqual([1, 1.25, 1.75, 2, 1, 1.25, 1.75, 2]);
  });

  it('has the exact adjoint as gradient: <up(x), g> = <x, up*(g)>', () => {
    const x = tf.randomNormal([2, 3, 5, 4]) as tf.Tensor4D;
    const g = tf.randomNormal([2, 6, 10, 4]);
    const lhs = tf.sum(tf.mul(upsample2x(x), g)).dataSync()[0];
    const adj = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(upsample2x(t as tf.Tensor4D), g)))(x);
    const rhs = tf.sum(tf.mul(x, adj)).dataSync()[0];
    expect(Math.abs(lhs - rhs) / Math.abs(lhs)).toBeLessThan(1e-5);
  });
});
