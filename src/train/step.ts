import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/types.js';
import { updateMovingStats, type ForwardContext } from '../model/layers.js';
import { jointLoss, type LossConfig } from '../model/loss.js';
import type { SlferModel } from '../model/slfer.js';

/** Loss values of one step, as numbers. */
export interface StepLosses {
  total: number;
  expression: number;
  segmentation?: number;
  components?: number;
}

/**
 * One worker's share of a training step: gradients of the joint loss on its batch, in the model's
 * parameter order. The caller owns the gradient tensors (average them across workers, apply, then
 * dispose) and must pass `bnStats` to `finishStep` after the weights are updated.
 */
export interface GradientResult {
  grads: tf.Tensor[];
  losses: { total: tf.Scalar; expression: tf.Scalar; segmentation?: tf.Scalar; components?: tf.Scalar };
  bnStats: NonNullable<ForwardContext['bnBatchStats']>;
}

export function batchTensors(model: SlferModel, batch: Batch) {
  const S = batch.inputSize;
  return {
    images: tf.tensor4d(batch.images, [batch.size, S, S, 3], 'float32'),
    labels: tf.tensor1d(batch.labels, 'int32'),
    masks: model.parts.st && batch.masks ? tf.tensor3d(Int32Array.from(batch.masks), [batch.size, S, S], 'int32') : undefined,
    components: model.parts.ct && batch.components ? tf.tensor2d(batch.components, [batch.size, model.config.numParts], 'float32') : undefined,
  };
}

export function computeGradients(model: SlferModel, batch: Batch, lossCfg: LossConfig): GradientResult {
  const t = batchTensors(model, batch);
  const bnStats: GradientResult['bnStats'] = new Map();
  const ctx: ForwardContext = { training: true, bnBatchStats: bnStats, frozenBatchNorm: model.config.batchNorm === 'frozen' };
  let kept: GradientResult['losses'] | undefined;
  const params = model.store.params;
  const { value, grads } = tf.variableGrads(() => {
    const out = model.forward(t.images, ctx);
    const terms = jointLoss(out, { labels: t.labels, masks: t.masks, components: t.components }, lossCfg);
    kept = {
      total: tf.keep(terms.total.clone()),
      expression: tf.keep(terms.expression.clone()),
      segmentation: terms.segmentation && tf.keep(terms.segmentation.clone()),
      components: terms.components && tf.keep(terms.components.clone()),
    };
    return terms.total;
  }, params);
  value.dispose();
  for (const x of Object.values(t)) x?.dispose();
  return { grads: params.map((p) => grads[p.name]), losses: kept!, bnStats };
}

/** Reads and frees the loss scalars. */
export async function readLosses(l: GradientResult['losses']): Promise<StepLosses> {
  const num = async (s?: tf.Scalar) => {
    if (!s) return undefined;
    const v = (await s.data())[0];
    s.dispose();
    return v;
  };
  return { total: (await num(l.total))!, expression: (await num(l.expression))!, segmentation: await num(l.segmentation), components: await num(l.components) };
}

/**
 * After the optimizer update: fold BN batch statistics into the moving averages. The gradients are
 * not touched: whoever holds them last (the caller, or a reducer that replaced them) frees them.
 */
export function finishStep(model: SlferModel, bnStats: GradientResult['bnStats']): void {
  updateMovingStats(model.store, bnStats);
}
