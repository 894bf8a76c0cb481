import * as tf from '@tensorflow/tfjs';
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
  /** [B, S, S] part index, int32 (ST). */
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
 * - L_S (eq. 2): per-pixel softmax cross-entropy over the J parts, averaged over the K pixels.
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
    const [b, h, w, j] = out.segmentation.shape;
    terms.segmentation = softmaxCrossEntropy(tf.reshape(out.segmentation, [b * h * w, j]), tf.reshape(t.masks, [b * h * w]) as tf.Tensor1D);
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
