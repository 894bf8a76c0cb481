/**
 * BiSeNet face parsing as face-parsing.PyTorch (zllrunning, MIT) defines it, for inference on
 * TF.js: its model.py and resnet.py, module for module, NHWC. Weights come from that repository's
 * PyTorch state dict (79999_iter.pth: 191 keys such as `cp.resnet.conv1.weight`).
 *
 * Eval-mode BatchNorm is folded into the convolution before it (w·s, β − μ·s with s = γ/√(σ²+ε)):
 * one convolution and one bias per layer instead of five extra passes over the activations.
 * tests/parse/bisenet-parity.test.ts checks the result against PyTorch's own forward.
 */
import { existsSync, statSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { errors } from '../errors.js';
import { readStateDict, stripPrefix, toFloat32, type StateDict, type TorchTensor } from '../torch/state-dict.js';

export const BISENET_CLASSES = 19;
/** nn.BatchNorm2d's default. */
const BN_EPSILON = 1e-5;
const MODEL_NAME = `BiSeNet (face-parsing.PyTorch, ${BISENET_CLASSES} classes)`;
const EXPECTED_FILE = "face-parsing.PyTorch's 79999_iter.pth (the state dict of BiSeNet(n_classes=19), linked from that repository's README)";

/** One convolution of the network, with the BatchNorm that follows it (if any) and its geometry. */
interface ConvSpec {
  /** State-dict prefix of the convolution, e.g. `cp.resnet.layer1.0.conv1`. */
  conv: string;
  /** State-dict prefix of its BatchNorm, e.g. `cp.resnet.layer1.0.bn1`, or null. */
  bn: string | null;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  pad: number;
}

/** Every convolution of BiSeNet(19) in state-dict order: the layout the weights must match. */
export function bisenetLayout(): ConvSpec[] {
  const specs: ConvSpec[] = [];
  const add = (conv: string, bn: string | null, cin: number, cout: number, k: number, stride = 1, pad = k === 3 ? 1 : 0) =>
    specs.push({ conv, bn, cin, cout, k, stride, pad });
  // ConvBNReLU(in, out, ks, stride, padding): model.py's conv + bn.
  const convBnRelu = (p: string, cin: number, cout: number, k: number) => add(`${p}.conv`, `${p}.bn`, cin, cout, k);

  // resnet.py: Resnet18 without its fc.
  add('cp.resnet.conv1', 'cp.resnet.bn1', 3, 64, 7, 2, 3);
  const widths = [64, 64, 128, 256, 512];
  for (let l = 1; l <= 4; l++) {
    for (let b = 0; b < 2; b++) {
      const p = `cp.resnet.layer${l}.${b}`;
      const cin = b === 0 ? widths[l - 1] : widths[l];
      const stride = b === 0 && l > 1 ? 2 : 1;
      add(`${p}.conv1`, `${p}.bn1`, cin, widths[l], 3, stride);
      add(`${p}.conv2`, `${p}.bn2`, widths[l], widths[l], 3);
      if (cin !== widths[l] || stride !== 1) add(`${p}.downsample.0`, `${p}.downsample.1`, cin, widths[l], 1, stride);
    }
  }
  // ContextPath: attention refinement on 1/16 and 1/32, their heads, the global-pool branch.
  for (const [p, cin] of [['cp.arm16', 256], ['cp.arm32', 512]] as const) {
    convBnRelu(`${p}.conv`, cin, 128, 3);
    add(`${p}.conv_atten`, `${p}.bn_atten`, 128, 128, 1);
  }
  convBnRelu('cp.conv_head32', 128, 128, 3);
  convBnRelu('cp.conv_head16', 128, 128, 3);
  convBnRelu('cp.conv_avg', 512, 128, 1);
  // FeatureFusionModule(256, 256).
  convBnRelu('ffm.convblk', 256, 256, 1);
  add('ffm.conv1', null, 256, 64, 1);
  add('ffm.conv2', null, 64, 256, 1);
  // The three BiSeNetOutput heads; inference uses conv_out, training also the other two.
  for (const [p, cin, mid] of [['conv_out', 256, 256], ['conv_out16', 128, 64], ['conv_out32', 128, 64]] as const) {
    convBnRelu(`${p}.conv`, cin, mid, 3);
    add(`${p}.conv_out`, null, mid, BISENET_CLASSES, 1);
  }
  return specs;
}

/** The state-dict keys the layout implies, with their PyTorch shapes. */
function expectedKeys(specs: ConvSpec[]): Map<string, number[]> {
  const keys = new Map<string, number[]>();
  for (const s of specs) {
    keys.set(`${s.conv}.weight`, [s.cout, s.cin, s.k, s.k]);
    if (s.bn) for (const f of ['weight', 'bias', 'running_mean', 'running_var']) keys.set(`${s.bn}.${f}`, [s.cout]);
  }
  return keys;
}

/** BatchNorm's step counter: in every file saved by torch >= 0.4.1, meaningless for inference, so optional. */
const isStepCounter = (key: string) => key.endsWith('.num_batches_tracked');
const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * Refuses a state dict that is not BiSeNet(19)'s, listing every missing key, unused key and shape
 * mismatch (model's shape and file's shape): a partial load would parse faces into garbage.
 */
function checkKeys(sd: StateDict, expected: Map<string, number[]>, file: string): void {
  const problems: string[] = [];
  for (const [key, shape] of expected) {
    const t = sd.get(key);
    if (!t) problems.push(`missing: ${key} ${shapeText(shape)}`);
    else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      problems.push(`shape mismatch: ${key} is ${shapeText(shape)} in the model, ${shapeText(t.shape)} in the file`);
    }
  }
  for (const [key, t] of sd) {
    if (expected.has(key)) continue;
    const counterOf = isStepCounter(key) ? key.slice(0, -'.num_batches_tracked'.length) : null;
    if (counterOf !== null && expected.has(`${counterOf}.running_var`) && t.shape.length === 0) continue;
    problems.push(`unused: ${key} ${shapeText(t.shape)}`);
  }
  if (problems.length) throw errors.weightsDoNotFit(file, MODEL_NAME, problems.slice(0, 12), problems.length, EXPECTED_FILE);
}

function finiteValues(t: TorchTensor, key: string, file: string): Float32Array {
  const v = toFloat32(t);
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) throw errors.weightsInvalid(file, key, `holds ${v[i]} at element ${i}`);
  }
  return v;
}

/** A convolution with its BatchNorm folded in, on the engine. */
interface FoldedConv {
  w: tf.Tensor4D;
  b: tf.Tensor1D | null;
  stride: number;
  pad: number;
}

/** OIHW weights (scaled per output channel) to HWIO, tfjs's filter layout. */
function foldConv(s: ConvSpec, sd: StateDict, file: string): FoldedConv {
  const w = finiteValues(sd.get(`${s.conv}.weight`)!, `${s.conv}.weight`, file);
  const scale = new Float64Array(s.cout).fill(1);
  let bias: Float32Array | null = null;
  if (s.bn) {
    const [gamma, beta, mean, variance] = ['weight', 'bias', 'running_mean', 'running_var'].map((f) => finiteValues(sd.get(`${s.bn}.${f}`)!, `${s.bn}.${f}`, file));
    bias = new Float32Array(s.cout);
    for (let o = 0; o < s.cout; o++) {
      if (!(variance[o] >= 0)) throw errors.weightsInvalid(file, `${s.bn}.running_var`, `holds the negative variance ${variance[o]} at element ${o}`);
      scale[o] = gamma[o] / Math.sqrt(variance[o] + BN_EPSILON);
      bias[o] = beta[o] - mean[o] * scale[o];
    }
  }
  const { cin, cout, k } = s;
  const hwio = new Float32Array(w.length);
  for (let o = 0; o < cout; o++)
    for (let i = 0; i < cin; i++)
      for (let y = 0; y < k; y++)
        for (let x = 0; x < k; x++) hwio[((y * k + x) * cin + i) * cout + o] = w[((o * cin + i) * k + y) * k + x] * scale[o];
  return { w: tf.tensor4d(hwio, [k, k, cin, cout]), b: bias && tf.tensor1d(bias), stride: s.stride, pad: s.pad };
}

/** A type, not an interface, so that tf.tidy can return it. */
export type BiSeNetOutputs = {
  /** The main head (what face parsing uses): [N, H, W, 19] logits at the input's size. */
  out: tf.Tensor4D;
  /** The auxiliary heads on the 1/8 context features and on the 1/16 head (training only in PyTorch). */
  out16: tf.Tensor4D;
  out32: tf.Tensor4D;
}

export class BiSeNet {
  private readonly convs = new Map<string, FoldedConv>();

  /**
   * `fused`: run convolution, bias and ReLU as tfjs's fused kernel. Right where that kernel is the
   * fast one (webgpu, cpu, tensorflow); on wasm the fast convolution is the plain Conv2D that the
   * native oneDNN kernels replace, so there it is conv2d, then add and relu.
   */
  constructor(
    sd: StateDict,
    readonly source: string,
    private readonly fused = tf.getBackend() !== 'wasm',
  ) {
    const specs = bisenetLayout();
    // readStateDict strips wrapper prefixes; a StateDict built elsewhere may still carry one.
    const clean = stripPrefix(sd);
    checkKeys(clean, expectedKeys(specs), source);
    try {
      for (const s of specs) this.convs.set(s.conv, foldConv(s, clean, source));
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Parameters the file supplied (BatchNorm's statistics included, step counters not). */
  static parameterCount(): number {
    return [...expectedKeys(bisenetLayout()).values()].reduce((n, s) => n + s.reduce((a, d) => a * d, 1), 0);
  }

  private conv(name: string, x: tf.Tensor4D, relu: boolean): tf.Tensor4D {
    const c = this.convs.get(name);
    if (!c) throw errors.internal(`BiSeNet has no convolution ${name}`);
    if (this.fused) return tf.fused.conv2d({ x, filter: c.w, strides: c.stride, pad: c.pad, bias: c.b ?? undefined, activation: relu ? 'relu' : 'linear' });
    // Numeric padding as in PyTorch (symmetric), not tfjs's 'same', which pads stride-2 convs asymmetrically.
    let y = tf.conv2d(x, c.w, c.stride, c.pad);
    if (c.b) y = tf.add(y, c.b);
    return relu ? tf.relu(y) : y;
  }

  /** resnet.py's BasicBlock: relu(shortcut + bn2(conv2(relu(bn1(conv1(x)))))). */
  private block(p: string, x: tf.Tensor4D): tf.Tensor4D {
    const residual = this.conv(`${p}.conv2`, this.conv(`${p}.conv1`, x, true), false);
    const shortcut = this.convs.has(`${p}.downsample.0`) ? this.conv(`${p}.downsample.0`, x, false) : x;
    return tf.relu(tf.add(shortcut, residual) as tf.Tensor4D);
  }

  /** Resnet18.forward: the 1/8, 1/16 and 1/32 features. */
  private resnet(x: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
    let y = tf.maxPool(this.conv('cp.resnet.conv1', x, true), 3, 2, 1);
    const feats: tf.Tensor4D[] = [];
    for (let l = 1; l <= 4; l++) {
      for (let b = 0; b < 2; b++) y = this.block(`cp.resnet.layer${l}.${b}`, y);
      feats.push(y);
    }
    return [feats[1], feats[2], feats[3]];
  }

  /** AttentionRefinementModule: feat · sigmoid(bn(conv1x1(avgpool(feat)))), feat = ConvBNReLU(x). */
  private arm(p: string, x: tf.Tensor4D): tf.Tensor4D {
    const feat = this.conv(`${p}.conv.conv`, x, true);
    const atten = tf.sigmoid(this.conv(`${p}.conv_atten`, tf.mean(feat, [1, 2], true) as tf.Tensor4D, false));
    return tf.mul(feat, atten);
  }

  /** ContextPath.forward: (feat8, feat16_up, feat32_up). */
  private contextPath(x: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
    const [feat8, feat16, feat32] = this.resnet(x);
    // F.interpolate(avg, (H32, W32), mode='nearest') of a 1x1 map is a broadcast.
    const avg = this.conv('cp.conv_avg.conv', tf.mean(feat32, [1, 2], true) as tf.Tensor4D, true);
    const feat32Sum = tf.add(this.arm('cp.arm32', feat32), avg) as tf.Tensor4D;
    const feat32Up = this.conv('cp.conv_head32.conv', nearest(feat32Sum, feat16), true);
    const feat16Sum = tf.add(this.arm('cp.arm16', feat16), feat32Up) as tf.Tensor4D;
    const feat16Up = this.conv('cp.conv_head16.conv', nearest(feat16Sum, feat8), true);
    return [feat8, feat16Up, feat32Up];
  }

  /** FeatureFusionModule.forward(fsp, fcp): feat · atten + feat. */
  private ffm(fsp: tf.Tensor4D, fcp: tf.Tensor4D): tf.Tensor4D {
    const feat = this.conv('ffm.convblk.conv', tf.concat([fsp, fcp], 3), true);
    const atten = tf.sigmoid(this.conv('ffm.conv2', this.conv('ffm.conv1', tf.mean(feat, [1, 2], true) as tf.Tensor4D, true), false));
    return tf.add(tf.mul(feat, atten), feat);
  }

  private head(p: string, x: tf.Tensor4D, size: [number, number]): tf.Tensor4D {
    const logits = this.conv(`${p}.conv_out`, this.conv(`${p}.conv.conv`, x, true), false);
    return tf.image.resizeBilinear(logits, size, true); // F.interpolate(..., mode='bilinear', align_corners=True)
  }

  /**
   * BiSeNet.forward on NHWC input, normalised as the model was trained ((rgb/255 − mean)/std,
   * ImageNet's): the main head's logits, and with `all` the two auxiliary heads too. Call inside
   * tf.tidy.
   */
  forward(x: tf.Tensor4D): tf.Tensor4D;
  forward(x: tf.Tensor4D, all: true): BiSeNetOutputs;
  forward(x: tf.Tensor4D, all = false): tf.Tensor4D | BiSeNetOutputs {
    const size: [number, number] = [x.shape[1], x.shape[2]];
    const [res8, cp8, cp16] = this.contextPath(x);
    const out = this.head('conv_out', this.ffm(res8, cp8), size); // the 1/8 ResNet feature stands in for the spatial path
    if (!all) return out;
    return { out, out16: this.head('conv_out16', cp8, size), out32: this.head('conv_out32', cp16, size) };
  }

  dispose(): void {
    for (const c of this.convs.values()) {
      c.w.dispose();
      c.b?.dispose();
    }
    this.convs.clear();
  }
}

/** F.interpolate(x, like's size, mode='nearest'): source index floor(dst · in/out), no half-pixel offset. */
function nearest(x: tf.Tensor4D, like: tf.Tensor4D): tf.Tensor4D {
  return tf.image.resizeNearestNeighbor(x, [like.shape[1], like.shape[2]], false, false);
}

/** BiSeNet with the weights of a torch.save file (zip or legacy), on the current engine. */
export async function readBiSeNet(file: string): Promise<BiSeNet> {
  requireWeightsFile(file);
  return new BiSeNet(await readStateDict(file), file);
}

export function requireWeightsFile(file: string): void {
  if (!existsSync(file) || !statSync(file).isFile()) throw errors.weightsNotFound(file, EXPECTED_FILE, 'or use --method landmarks, which needs no weights');
}
