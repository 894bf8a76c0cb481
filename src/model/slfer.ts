import * as tf from '@tensorflow/tfjs';
import { channels, variantParts, type ModelConfig, type VariantParts } from './config.js';
import {
  batchNorm,
  conv,
  declareBatchNorm,
  declareConv,
  declareDense,
  declareSe,
  dense,
  se,
  upsample2x,
  type ForwardContext,
} from './layers.js';
import { ParamStore } from './params.js';

/** What one forward pass gives: expression logits always, ST and CT logits when the variant has them. */
export interface SlferOutputs {
  /** [B, numExpressions] */
  expression: tf.Tensor2D;
  /** [B, S, S, numParts] per-pixel part logits (ST). */
  segmentation?: tf.Tensor4D;
  /** [B, numParts] part-presence logits (CT). */
  components?: tf.Tensor2D;
  /** [B, ch(128)] ECT's features before its classifier (ReLU of FC 128), with `ectFeatures: true` (t-SNE, Fig. 4). */
  ectFeatures?: tf.Tensor2D;
}

const STAGES = [64, 128, 256, 512];

/**
 * SLFER: an (SE-)ResNet18 backbone with three heads (DESIGN.md, paper §Method).
 * - backbone: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool, four stages of two BasicBlocks, an SE block
 *   after each block's second BN (variant `proposed`).
 * - ECT: global average pool, FC 256, FC 128, FC numExpressions.
 * - CT: global average pool, FC 256, FC numParts.
 * - ST: layer4 upsampled ×2, concatenated with layer3, conv-BN-ReLU, ×2 upsample, three
 *   (×2 upsample, conv-BN-ReLU) stages, 1x1 classifier: logits at the input resolution.
 * Inference (`heads: 'expression'`) runs the backbone and ECT only.
 */
export class SlferModel {
  readonly store: ParamStore;
  readonly parts: VariantParts;
  /** Blocks whose shortcut needs a 1x1 conv (stride or width change). */
  private readonly downsampled = new Set<string>();

  constructor(
    readonly config: ModelConfig,
    seed: number,
  ) {
    if (config.inputSize % 32 !== 0) throw new Error(`inputSize must be a multiple of 32, got ${config.inputSize}`);
    this.parts = variantParts(config.variant);
    this.store = new ParamStore(seed);
    this.declare();
  }

  private ch(base: number): number {
    return channels(base, this.config.width);
  }

  private declare(): void {
    const s = this.store;
    const { numExpressions, numParts, seReduction } = this.config;
    declareConv(s, 'stem.conv', 7, 3, this.ch(64));
    declareBatchNorm(s, 'stem.bn', this.ch(64));
    let cin = this.ch(64);
    STAGES.forEach((base, stage) => {
      const cout = this.ch(base);
      for (let block = 0; block < 2; block++) {
        const name = `layer${stage + 1}.${block}`;
        const stride = stage > 0 && block === 0 ? 2 : 1;
        declareConv(s, `${name}.conv1`, 3, cin, cout);
        declareBatchNorm(s, `${name}.bn1`, cout);
        declareConv(s, `${name}.conv2`, 3, cout, cout);
        declareBatchNorm(s, `${name}.bn2`, cout);
        if (this.parts.se) declareSe(s, `${name}.se`, cout, seReduction);
        if (stride !== 1 || cin !== cout) {
          declareConv(s, `${name}.down.conv`, 1, cin, cout);
          declareBatchNorm(s, `${name}.down.bn`, cout);
          this.downsampled.add(name);
        }
        cin = cout;
      }
    });
    const feat = this.ch(512);
    declareDense(s, 'ect.fc1', feat, this.ch(256));
    declareDense(s, 'ect.fc2', this.ch(256), this.ch(128));
    declareDense(s, 'ect.fc3', this.ch(128), numExpressions);
    if (this.parts.ct) {
      declareDense(s, 'ct.fc1', feat, this.ch(256));
      declareDense(s, 'ct.fc2', this.ch(256), numParts);
    }
    if (this.parts.st) {
      declareConv(s, 'st.fuse.conv', 3, feat + this.ch(256), this.ch(256));
      declareBatchNorm(s, 'st.fuse.bn', this.ch(256));
      const dec = [this.ch(256), this.ch(128), this.ch(64), this.ch(32)];
      for (let i = 0; i < 3; i++) {
        declareConv(s, `st.up${i + 1}.conv`, 3, dec[i], dec[i + 1]);
        declareBatchNorm(s, `st.up${i + 1}.bn`, dec[i + 1]);
      }
      declareConv(s, 'st.classifier', 1, dec[3], numParts, true);
    }
  }

  /**
   * Forward pass over NHWC images. `heads: 'expression'` skips ST and CT (inference);
   * `ectFeatures` also returns the activations ECT classifies (the same ops run either way, so
   * training is unchanged).
   */
  forward(images: tf.Tensor4D, ctx: ForwardContext, heads: 'all' | 'expression' = 'all', o: { ectFeatures?: boolean } = {}): SlferOutputs {
    const s = this.store;
    const cbr = (name: string, x: tf.Tensor4D, stride: number, pad: number) =>
      tf.relu(batchNorm(s, `${name}.bn`, conv(s, `${name}.conv`, x, stride, pad), ctx)) as tf.Tensor4D;

    let x = cbr('stem', images, 2, 3);
    x = tf.maxPool(x, 3, 2, 1);
    const features: tf.Tensor4D[] = [];
    STAGES.forEach((_, stage) => {
      for (let block = 0; block < 2; block++) x = this.basicBlock(`layer${stage + 1}.${block}`, x, stage > 0 && block === 0 ? 2 : 1, ctx);
      features.push(x);
    });
    const [, , f3, f4] = features;
    const pooled = tf.mean(f4, [1, 2]) as tf.Tensor2D;
    const ect = tf.relu(dense(s, 'ect.fc2', tf.relu(dense(s, 'ect.fc1', pooled)))) as tf.Tensor2D;
    const expression = dense(s, 'ect.fc3', ect);
    const out: SlferOutputs = { expression };
    if (o.ectFeatures) out.ectFeatures = ect;
    if (heads === 'expression') return out;
    if (this.parts.ct) out.components = dense(s, 'ct.fc2', tf.relu(dense(s, 'ct.fc1', pooled)));
    if (this.parts.st) {
      let y = cbr('st.fuse', tf.concat([upsample2x(f4), f3], 3), 1, 1);
      y = upsample2x(y);
      for (let i = 1; i <= 3; i++) y = cbr(`st.up${i}`, upsample2x(y), 1, 1);
      out.segmentation = conv(s, 'st.classifier', y, 1, 0, true);
    }
    return out;
  }

  private basicBlock(name: string, x: tf.Tensor4D, stride: number, ctx: ForwardContext): tf.Tensor4D {
    const s = this.store;
    let y = tf.relu(batchNorm(s, `${name}.bn1`, conv(s, `${name}.conv1`, x, stride, 1), ctx)) as tf.Tensor4D;
    y = batchNorm(s, `${name}.bn2`, conv(s, `${name}.conv2`, y, 1, 1), ctx);
    if (this.parts.se) y = se(s, `${name}.se`, y);
    const shortcut = this.downsampled.has(name) ? batchNorm(s, `${name}.down.bn`, conv(s, `${name}.down.conv`, x, stride, 0), ctx) : x;
    return tf.relu(tf.add(y, shortcut)) as tf.Tensor4D;
  }

  dispose(): void {
    this.store.dispose();
  }
}
