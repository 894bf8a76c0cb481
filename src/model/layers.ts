import * as tf from '@tensorflow/tfjs';
import { BATCH_NORM_BACKWARD, BATCH_NORM_FORWARD, hasBatchNormKernels } from '../engine/kernels/batch-norm-kernels.js';
import type { ParamStore } from './params.js';

/**
 * The network's building blocks as functions over a ParamStore. Declaring (`declare*`) and applying
 * are separate so the parameter order is fixed once, by the builder, before any forward pass.
 */

export interface ForwardContext {
  training: boolean;
  /** Normalise with the moving statistics even while training (frozen BatchNorm). */
  frozenBatchNorm?: boolean;
  /** Filled in training mode: each BatchNorm's batch mean and (biased) variance, kept past tidy. */
  bnBatchStats?: Map<string, { mean: tf.Tensor1D; variance: tf.Tensor1D; count: number }>;
}

export const BN_EPSILON = 1e-5;
/** PyTorch's convention: moving = (1 - momentum) * moving + momentum * batch. */
export const BN_MOMENTUM = 0.1;

export function declareConv(store: ParamStore, name: string, k: number, cin: number, cout: number, bias = false): void {
  store.param(`${name}.weight`, [k, k, cin, cout], { kind: 'heNormalFanOut', fanOut: k * k * cout });
  if (bias) store.param(`${name}.bias`, [cout], { kind: 'uniform', bound: 1 / Math.sqrt(k * k * cin) });
}

export function conv(store: ParamStore, name: string, x: tf.Tensor4D, stride: number, pad: number, bias = false): tf.Tensor4D {
  // Numeric padding as in PyTorch (symmetric), not tfjs's 'same', which pads stride-2 convs asymmetrically.
  const y = tf.conv2d(x, store.get(`${name}.weight`) as tf.Tensor4D, stride, pad);
  return bias ? tf.add(y, store.get(`${name}.bias`)) : y;
}

export function declareBatchNorm(store: ParamStore, name: string, c: number): void {
  store.param(`${name}.gamma`, [c], { kind: 'const', value: 1 });
  store.param(`${name}.beta`, [c], { kind: 'const', value: 0 });
  store.buffer(`${name}.movingMean`, [c], { kind: 'const', value: 0 });
  store.buffer(`${name}.movingVar`, [c], { kind: 'const', value: 1 });
}

export function batchNorm(store: ParamStore, name: string, x: tf.Tensor4D, ctx: ForwardContext): tf.Tensor4D {
  const gamma = store.get(`${name}.gamma`) as tf.Tensor1D;
  const beta = store.get(`${name}.beta`) as tf.Tensor1D;
  if (!ctx.training || ctx.frozenBatchNorm) {
    return tf.batchNorm4d(x, store.get(`${name}.movingMean`) as tf.Tensor1D, store.get(`${name}.movingVar`) as tf.Tensor1D, beta, gamma, BN_EPSILON);
  }
  return batchNormTraining(x, gamma, beta, (mean, variance) =>
    ctx.bnBatchStats?.set(name, { mean: tf.keep(mean.clone()), variance: tf.keep(variance.clone()), count: x.shape[0] * x.shape[1] * x.shape[2] }),
  );
}

/**
 * Training-mode batch normalisation over N·H·W with its closed-form gradient
 *   dx = γ·σ⁻¹ · (dy − mean(dy) − x̂ · mean(dy·x̂)),  dγ = Σ dy·x̂,  dβ = Σ dy.
 * Autodiff through tf.moments gives the same numbers in several more passes over the activations,
 * and tfjs's own batchNorm gradient broadcasts its parameters with Tile (a sixth of a CPU step).
 */
export function batchNormTraining(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  onStats: (mean: tf.Tensor1D, variance: tf.Tensor1D) => void = () => {},
): tf.Tensor4D {
  if (hasBatchNormKernels()) return batchNormTrainingKernels(x, gamma, beta, onStats);
  const n = x.shape[0] * x.shape[1] * x.shape[2];
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, g, b] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const { mean, variance } = tf.moments(xi, [0, 1, 2]);
    onStats(mean as tf.Tensor1D, variance as tf.Tensor1D);
    const rstd = tf.rsqrt(tf.add(variance, BN_EPSILON));
    const xhat = tf.mul(tf.sub(xi, mean), rstd);
    save([xhat, rstd, g]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xh, rs, gm] = saved;
        const d = dy as tf.Tensor;
        const sumDy = tf.sum(d, [0, 1, 2]);
        const sumDyXhat = tf.sum(tf.mul(d, xh), [0, 1, 2]);
        const centred = tf.sub(d, tf.add(tf.div(sumDy, n), tf.mul(xh, tf.div(sumDyXhat, n))));
        return [tf.mul(centred, tf.mul(gm, rs)), sumDyXhat, sumDy];
      },
    };
  });
  return f(x, gamma, beta) as tf.Tensor4D;
}

/** The same through an engine's two batch-norm kernels (engine/kernels/batch-norm-kernels.ts): one pass each way. */
function batchNormTrainingKernels(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, onStats: (mean: tf.Tensor1D, variance: tf.Tensor1D) => void): tf.Tensor4D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, g, b] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const [y, mean, variance, rstd] = tf.engine().runKernel(BATCH_NORM_FORWARD, { x: xi, gamma: g, beta: b }, { epsilon: BN_EPSILON } as never) as tf.Tensor[];
    onStats(mean as tf.Tensor1D, variance as tf.Tensor1D);
    save([xi, mean, rstd, g]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xs, m, r, gm] = saved;
        return tf.engine().runKernel(BATCH_NORM_BACKWARD, { dy: dy as tf.Tensor, x: xs, mean: m, rstd: r, gamma: gm }, {}) as tf.Tensor[];
      },
    };
  });
  return f(x, gamma, beta) as tf.Tensor4D;
}

/**
 * Folds a step's batch statistics into the moving averages (PyTorch semantics: the moving variance
 * takes the unbiased batch variance) and disposes them.
 */
export function updateMovingStats(store: ParamStore, stats: NonNullable<ForwardContext['bnBatchStats']>): void {
  tf.tidy(() => {
    for (const [name, { mean, variance, count }] of stats) {
      const mm = store.get(`${name}.movingMean`);
      const mv = store.get(`${name}.movingVar`);
      mm.assign(tf.add(tf.mul(mm, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
      const unbiased = tf.mul(variance, count / Math.max(1, count - 1));
      mv.assign(tf.add(tf.mul(mv, 1 - BN_MOMENTUM), tf.mul(unbiased, BN_MOMENTUM)));
    }
  });
  for (const { mean, variance } of stats.values()) {
    mean.dispose();
    variance.dispose();
  }
  stats.clear();
}

export function declareDense(store: ParamStore, name: string, cin: number, cout: number): void {
  const bound = 1 / Math.sqrt(cin);
  store.param(`${name}.weight`, [cin, cout], { kind: 'uniform', bound });
  store.param(`${name}.bias`, [cout], { kind: 'uniform', bound });
}

export function dense(store: ParamStore, name: string, x: tf.Tensor2D): tf.Tensor2D {
  return tf.add(tf.matMul(x, store.get(`${name}.weight`) as tf.Tensor2D), store.get(`${name}.bias`));
}

/** Squeeze-and-excitation (Hu et al. 2018): channel weights from pooled features. */
export function declareSe(store: ParamStore, name: string, c: number, reduction: number): void {
  const hidden = Math.max(2, Math.floor(c / reduction));
  declareDense(store, `${name}.fc1`, c, hidden);
  declareDense(store, `${name}.fc2`, hidden, c);
}

export function se(store: ParamStore, name: string, x: tf.Tensor4D): tf.Tensor4D {
  const pooled = tf.mean(x, [1, 2]) as tf.Tensor2D;
  const w = tf.sigmoid(dense(store, `${name}.fc2`, tf.relu(dense(store, `${name}.fc1`, pooled))));
  return tf.mul(x, tf.reshape(w, [x.shape[0], 1, 1, x.shape[3]]));
}

/**
 * Bilinear ×2 upsampling with PyTorch's align_corners=False (half-pixel) semantics. Its gradient
 * needs a ResizeBilinearGrad kernel that honours halfPixelCenters: slfer-dist registers one
 * (src/engine/kernels), since tfjs's own kernels ignore that attribute.
 */
export function upsample2x(x: tf.Tensor4D): tf.Tensor4D {
  return tf.image.resizeBilinear(x, [x.shape[1] * 2, x.shape[2] * 2], false, true);
}
