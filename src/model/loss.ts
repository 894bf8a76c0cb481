import * as tf from '@tensorflow/tfjs';
import { UNKNOWN_PART } from '../data/labels.js';
import type { SlferOutputs } from './slfer.js';

/** Weights of the joint loss (paper eq. 5) and CT's top-n. */
export interface LossConfig {
  /** λ1, weight of the segmentation loss L_S. */
  lambdaSeg: number;
  /** λ2, weight of the component loss L_C. */
  lambdaCls: number;
  /** n: how many dominant parts CT labels present. */
  topN: number;
}

export interface LossTargets {
  /** [B] expression index, int32. */
  labels: tf.Tensor1D;
  /** [B, S, S] part index, int32 (ST); UNKNOWN_PART where no part could be assigned. */
  masks?: tf.Tensor3D;
  /** [B, J] 0/1 top-n part labels (CT). */
  components?: tf.Tensor2D;
}

export interface LossTerms {
  total: tf.Scalar;
  expression: tf.Scalar;
  segmentation?: tf.Scalar;
  components?: tf.Scalar;
}

/**
 * L = L_EC + λ1 L_S + λ2 L_C (eq. 5), each term averaged over the batch:
 * - L_EC (eq. 4): softmax cross-entropy of the expression logits.
 * - L_S (eq. 2): per-pixel softmax cross-entropy over the J parts, averaged over each image's K
 *   pixels whose part is known (segmentationLoss).
 * - L_C (eq. 3): binary cross-entropy of the J part-presence sigmoids, summed over parts as the
 *   paper writes it (with the sign that makes it a loss).
 * Every term is a mean over samples, so gradients of a batch split across workers average exactly.
 */
export function jointLoss(out: SlferOutputs, t: LossTargets, cfg: LossConfig): LossTerms {
  const expression = softmaxCrossEntropy(out.expression, t.labels);
  let total: tf.Scalar = expression;
  const terms: LossTerms = { total, expression };
  if (out.segmentation) {
    if (!t.masks) throw new Error('the model has an ST head but the batch has no masks');
    terms.segmentation = segmentationLoss(out.segmentation, t.masks);
    total = tf.add(total, tf.mul(terms.segmentation, cfg.lambdaSeg));
  }
  if (out.components) {
    if (!t.components) throw new Error('the model has a CT head but the batch has no component labels');
    terms.components = sigmoidBinaryCrossEntropySum(out.components, t.components);
    total = tf.add(total, tf.mul(terms.components, cfg.lambdaCls));
  }
  terms.total = total;
  return terms;
}

/**
 * L_S with unknown pixels left out: mean over images of the mean cross-entropy over that image's
 * known pixels; an image with none contributes 0 (and still counts as a sample). Normalising per
 * image keeps L_S a mean over samples, so gradients of a batch split across workers still average
 * exactly (PyTorch's ignore_index pools the known pixels of the whole batch instead, which depends
 * on how the batch is split; the two agree when every image has as many known pixels, e.g. all).
 * Written as mean over all B·K pixels of ce · known · K/K_b: with every pixel known the weight is
 * exactly 1, so the value and the gradient are bit for bit those of the plain mean.
 */
export function segmentationLoss(logits: tf.Tensor4D, masks: tf.Tensor3D): tf.Scalar {
  const [b, h, w, j] = logits.shape;
  const k = h * w;
  const labels = tf.reshape(masks, [b, k]);
  const isKnown = tf.notEqual(labels, UNKNOWN_PART);
  // 1/0 by a select, not a cast: tfjs-backend-webgpu's bool-to-float cast keeps the bool storage,
  // which slfer-dist's webgpu row sum then reads as zeros.
  const known = tf.where(isKnown, tf.ones([b, k]), tf.zeros([b, k]));
  // K / max(K_b, 1): an image without a known pixel gets weight 0, not 0/0.
  const scale = tf.div(tf.scalar(k), tf.maximum(tf.sum(known, 1, true), 1));
  const weights = tf.reshape(tf.mul(known, scale), [b * k]);
  const safeLabels = tf.reshape(tf.where(isKnown, labels, tf.zerosLike(labels)), [b * k]);
  const logp = tf.logSoftmax(tf.reshape(logits, [b * k, j]));
  const perPixel = tf.sum(tf.mul(tf.oneHot(tf.cast(safeLabels, 'int32'), j), logp), 1);
  return tf.neg(tf.mean(tf.mul(perPixel, weights))) as tf.Scalar;
}

/** mean_i −log softmax(logits_i)[label_i] */
export function softmaxCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const logp = tf.logSoftmax(logits);
  const onehot = tf.oneHot(tf.cast(labels, 'int32'), logits.shape[1]);
  return tf.neg(tf.mean(tf.sum(tf.mul(onehot, logp), 1))) as tf.Scalar;
}

/** mean_i Σ_j BCE(σ(x_ij), y_ij), in the stable form max(x,0) − x·y + log(1 + e^−|x|). */
export function sigmoidBinaryCrossEntropySum(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  const perElement = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, targets)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
  return tf.mean(tf.sum(perElement, 1)) as tf.Scalar;
}
