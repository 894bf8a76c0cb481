import * as tf from '@tensorflow/tfjs';
import { channels } from '../model/config.js';
import { BN_EPSILON } from '../model/layers.js';
import type { SlferModel } from '../model/slfer.js';

type Sym = tf.SymbolicTensor;

/**
 * The inference network of a trained SlferModel (backbone + ECT, optionally ST) rebuilt from
 * tf.layers, so that a browser loads it with tf.loadLayersModel, with no custom layer to register.
 * It computes what SlferModel.forward does with `training: false`:
 * - PyTorch's symmetric pads are ZeroPadding2D before 'valid' convs and pools (tfjs's 'same' pads a
 *   stride-2 layer on the bottom/right only). Zero-padding the max-pool is exact: it follows a ReLU,
 *   so every window already holds a value ≥ 0.
 * - BatchNorm stays a BatchNormalization layer (inference mode, epsilon 1e-5), not folded into the
 *   conv, so the weights are the checkpoint's, unchanged.
 * - ST's ×2 bilinear upsampling with half-pixel centres (PyTorch's align_corners=False) has no tfjs
 *   layer (UpSampling2D's bilinear and Resizing use other sample positions). It is the same as a
 *   nearest ×2 upsampling, edge-replicated by one pixel, then a fixed 3×3 depthwise filter
 *   [¼ ½ ¼]⊗[¼ ½ ¼]: exact, since the weights are powers of two.
 * Outputs: `expression`, softmax probabilities [B, numExpressions]; with ST, `segmentation`,
 * per-pixel part probabilities [B, S, S, numParts].
 */
export function buildWebModel(model: SlferModel, o: { withSegmentation: boolean }): tf.LayersModel {
  const { config } = model;
  const store = model.store;
  const ch = (base: number) => channels(base, config.width);
  // Weight copies are made after the layers are built (setWeights needs built layers).
  const assignments: { layer: tf.layers.Layer; names: string[] }[] = [];
  const fixed: { layer: tf.layers.Layer; values: () => tf.Tensor[] }[] = [];
  const id = (name: string) => name.replace(/\./g, '_');

  const conv = (name: string, x: Sym, filters: number, k: number, stride: number, pad: number, bias = false): Sym => {
    const padded = pad > 0 ? (tf.layers.zeroPadding2d({ padding: [[pad, pad], [pad, pad]], name: `${id(name)}_pad` }).apply(x) as Sym) : x;
    const layer = tf.layers.conv2d({ filters, kernelSize: k, strides: stride, padding: 'valid', useBias: bias, name: id(name) });
    assignments.push({ layer, names: bias ? [`${name}.weight`, `${name}.bias`] : [`${name}.weight`] });
    return layer.apply(padded) as Sym;
  };
  const bn = (name: string, x: Sym): Sym => {
    const layer = tf.layers.batchNormalization({ axis: -1, epsilon: BN_EPSILON, name: id(name) });
    assignments.push({ layer, names: [`${name}.gamma`, `${name}.beta`, `${name}.movingMean`, `${name}.movingVar`] });
    return layer.apply(x) as Sym;
  };
  const relu = (x: Sym, name: string): Sym => tf.layers.reLU({ name: `${id(name)}_relu` }).apply(x) as Sym;
  const dense = (name: string, x: Sym, units: number, activation: 'relu' | 'sigmoid' | 'softmax' | 'linear', outName?: string): Sym => {
    const layer = tf.layers.dense({ units, activation, name: outName ?? id(name) });
    assignments.push({ layer, names: [`${name}.weight`, `${name}.bias`] });
    return layer.apply(x) as Sym;
  };
  const cbr = (name: string, x: Sym, filters: number, k: number, stride: number, pad: number) => relu(bn(`${name}.bn`, conv(`${name}.conv`, x, filters, k, stride, pad)), name);

  const input = tf.input({ shape: [config.inputSize, config.inputSize, 3], name: 'image' });
  let x = cbr('stem', input, ch(64), 7, 2, 3);
  x = tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]], name: 'stem_pool_pad' }).apply(x) as Sym;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'stem_pool' }).apply(x) as Sym;
  const features: Sym[] = [];
  let cin = ch(64);
  [64, 128, 256, 512].forEach((base, stage) => {
    const cout = ch(base);
    for (let block = 0; block < 2; block++) {
      const name = `layer${stage + 1}.${block}`;
      const stride = stage > 0 && block === 0 ? 2 : 1;
      let y = relu(bn(`${name}.bn1`, conv(`${name}.conv1`, x, cout, 3, stride, 1)), `${name}.bn1`);
      y = bn(`${name}.bn2`, conv(`${name}.conv2`, y, cout, 3, 1, 1));
      if (model.parts.se) {
        const pooled = tf.layers.globalAveragePooling2d({ name: `${id(name)}_se_pool` }).apply(y) as Sym;
        const hidden = Math.max(2, Math.floor(cout / config.seReduction));
        let w = dense(`${name}.se.fc1`, pooled, hidden, 'relu');
        w = dense(`${name}.se.fc2`, w, cout, 'sigmoid');
        w = tf.layers.reshape({ targetShape: [1, 1, cout], name: `${id(name)}_se_reshape` }).apply(w) as Sym;
        y = tf.layers.multiply({ name: `${id(name)}_se_scale` }).apply([y, w]) as Sym;
      }
      const shortcut = stride !== 1 || cin !== cout ? bn(`${name}.down.bn`, conv(`${name}.down.conv`, x, cout, 1, stride, 0)) : x;
      x = relu(tf.layers.add({ name: `${id(name)}_add` }).apply([y, shortcut]) as Sym, name);
      cin = cout;
    }
    features.push(x);
  });
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(features[3]) as Sym;
  let e = dense('ect.fc1', pooled, ch(256), 'relu');
  e = dense('ect.fc2', e, ch(128), 'relu');
  const outputs: Sym[] = [dense('ect.fc3', e, config.numExpressions, 'softmax', 'expression')];

  if (o.withSegmentation) {
    let upsamples = 0;
    const up2 = (t: Sym): Sym => {
      const n = `up2x_${++upsamples}`;
      const [, h, w, c] = t.shape as number[];
      let u = tf.layers.upSampling2d({ size: [2, 2], interpolation: 'nearest', name: `${n}_nearest` }).apply(t) as Sym;
      // Replicate one edge row/column on each side: cropped slices concatenated around the tensor.
      const edge = (cropping: [[number, number], [number, number]], tag: string, src: Sym) => tf.layers.cropping2D({ cropping, name: `${n}_${tag}` }).apply(src) as Sym;
      u = tf.layers.concatenate({ axis: 1, name: `${n}_rows` }).apply([edge([[0, 2 * h - 1], [0, 0]], 'top', u), u, edge([[2 * h - 1, 0], [0, 0]], 'bottom', u)]) as Sym;
      u = tf.layers.concatenate({ axis: 2, name: `${n}_cols` }).apply([edge([[0, 0], [0, 2 * w - 1]], 'left', u), u, edge([[0, 0], [2 * w - 1, 0]], 'right', u)]) as Sym;
      const layer = tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 1, padding: 'valid', useBias: false, name: `${n}_bilinear` });
      fixed.push({ layer, values: () => [bilinearKernel(c)] });
      return layer.apply(u) as Sym;
    };
    let y = tf.layers.concatenate({ axis: 3, name: 'st_fuse_concat' }).apply([up2(features[3]), features[2]]) as Sym;
    y = cbr('st.fuse', y, ch(256), 3, 1, 1);
    y = up2(y);
    const dec = [ch(256), ch(128), ch(64), ch(32)];
    for (let i = 1; i <= 3; i++) y = cbr(`st.up${i}`, up2(y), dec[i], 3, 1, 1);
    const cls = conv('st.classifier', y, config.numParts, 1, 1, 0, true);
    outputs.push(tf.layers.softmax({ axis: -1, name: 'segmentation' }).apply(cls) as Sym);
  }

  const web = tf.model({ inputs: input, outputs, name: `slfer_${config.variant}` });
  try {
    for (const { layer, names } of assignments) layer.setWeights(names.map((n) => store.get(n)));
    for (const { layer, values } of fixed) {
      const v = values();
      layer.setWeights(v);
      tf.dispose(v);
    }
  } catch (err) {
    web.dispose();
    throw err;
  }
  return web;
}

/** The ×2 half-pixel bilinear filter over a nearest-upsampled, edge-replicated map, one per channel: [3, 3, c, 1]. */
function bilinearKernel(c: number): tf.Tensor4D {
  const k = [0.25, 0.5, 0.25];
  const values = new Float32Array(9 * c);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) values.fill(k[i] * k[j], (i * 3 + j) * c, (i * 3 + j + 1) * c);
  return tf.tensor4d(values, [3, 3, c, 1]);
}
