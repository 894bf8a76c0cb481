import * as tf from '@tensorflow/tfjs';
import type { Conv2DAttrs, GradConfig, NamedAttrMap } from '@tensorflow/tfjs';

/**
 * The gradient of Conv2D rewritten as forward convolutions, for backends whose forward conv is fast
 * and whose backprop kernels are not (tfjs-backend-wasm: XNNPACK runs the forward at ~30 GFLOP/s,
 * its Conv2DBackpropInput is a direct loop at ~2, and it has no Conv2DBackpropFilter at all):
 *
 *   dW = conv(xᵀ, dyᵀ, dilation = stride): batch and channels of x swap, so the batch sum becomes
 *        the channel contraction and dy, laid out as a filter, slides over the padded input;
 *   dx = conv(dilate(dy, stride), flip(W)ᵀ): the adjoint of a strided conv is a full conv of the
 *        zero-dilated output gradient with the spatially flipped, in/out-swapped filter.
 *
 * Other backends (and dilated or NCHW convolutions) keep tfjs's own gradient.
 */
const FAST_BACKENDS = new Set<string>();
let shipped: GradConfig | undefined;

export function useConvGradViaForwardConv(backendName: string): void {
  FAST_BACKENDS.add(backendName);
  if (!shipped) {
    shipped = tf.getGradient(tf.Conv2D);
    tf.registerGradient({ kernelName: tf.Conv2D, inputsToSave: ['x', 'filter'], gradFunc });
  }
}

function gradFunc(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap): Record<string, () => tf.Tensor> {
  const a = attrs as unknown as Conv2DAttrs;
  const dilations = typeof a.dilations === 'number' ? [a.dilations, a.dilations] : (a.dilations ?? [1, 1]);
  if (!FAST_BACKENDS.has(tf.getBackend()) || a.dataFormat === 'NCHW' || dilations[0] !== 1 || dilations[1] !== 1) {
    return shipped!.gradFunc(dy, saved, attrs);
  }
  const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
  const g = dy as tf.Tensor4D;
  const info = tf.backend_util.computeConv2DInfo(x.shape, filter.shape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  return { x: () => inputGrad(g, filter, info), filter: () => filterGrad(x, g, info) };
}

export function filterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, c: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  return tf.tidy(() => {
    const { top, bottom, left, right } = c.padInfo;
    const xp = top || bottom || left || right ? tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]) : x;
    const xt = tf.transpose(xp, [3, 1, 2, 0]); // [CI, Hp, Wp, B]
    const dyAsFilter = tf.transpose(dy, [1, 2, 0, 3]); // [OH, OW, B, CO]
    const out = tf.conv2d(xt, dyAsFilter, 1, 'valid', 'NHWC', [c.strideHeight, c.strideWidth]); // [CI, ≥KH, ≥KW, CO]
    const cropped = out.shape[1] === c.filterHeight && out.shape[2] === c.filterWidth ? out : tf.slice(out, [0, 0, 0, 0], [-1, c.filterHeight, c.filterWidth, -1]);
    return tf.transpose(cropped, [1, 2, 0, 3]);
  });
}

export function inputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D, c: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  return tf.tidy(() => {
    const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, inHeight: H, inWidth: W } = c;
    const d = dilate(dy, sh, sw);
    const top = kh - 1 - c.padInfo.top;
    const left = kw - 1 - c.padInfo.left;
    const bottom = H - d.shape[1] - top + kh - 1;
    const right = W - d.shape[2] - left + kw - 1;
    const padded = cropOrPad(d, top, bottom, left, right);
    const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]); // [KH, KW, CO, CI]
    return tf.conv2d(padded, flipped, 1, 'valid');
  });
}

/** Inserts stride−1 zeros between neighbouring rows and columns: [B, (OH−1)·sh+1, (OW−1)·sw+1, C]. */
function dilate(dy: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return dy;
  const [b, h, w, ch] = dy.shape;
  let t: tf.Tensor = dy;
  if (sh > 1) t = tf.reshape(tf.concat([tf.reshape(t, [b, h, 1, w, ch]), tf.zeros([b, h, sh - 1, w, ch])], 2), [b, h * sh, w, ch]);
  if (sw > 1) t = tf.reshape(tf.concat([tf.reshape(t, [b, h * sh, w, 1, ch]), tf.zeros([b, h * sh, w, sw - 1, ch])], 3), [b, h * sh, w * sw, ch]);
  return tf.slice(t, [0, 0, 0, 0], [-1, (h - 1) * sh + 1, (w - 1) * sw + 1, -1]) as tf.Tensor4D;
}

/** Pads with zeros where an amount is positive and crops where it is negative. */
function cropOrPad(t: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  const [, h, w] = t.shape;
  let r = t;
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const y0 = Math.max(0, -top);
    const x0 = Math.max(0, -left);
    r = tf.slice(r, [0, y0, x0, 0], [-1, h - y0 - Math.max(0, -bottom), w - x0 - Math.max(0, -right), -1]);
  }
  const p = [Math.max(0, top), Math.max(0, bottom), Math.max(0, left), Math.max(0, right)];
  return p.some((v) => v > 0) ? tf.pad(r, [[0, 0], [p[0], p[1]], [p[2], p[3]], [0, 0]]) : r;
}
