import * as tf from '@tensorflow/tfjs';
import { ADAM_UPDATE, hasAdamKernel, type AdamUpdateAttrs } from '../engine/kernels/adam-update.js';

export interface AdamConfig {
  beta1: number;
  beta2: number;
  epsilon: number;
}

/**
 * Adam (Kingma & Ba) with PyTorch's update, p ← p − lr·m̂ / (√v̂ + ε); one kernel per parameter
 * where the engine has it (engine/kernels/adam-update.ts), else the ops. Moments are held per parameter
 * in the model's own parameter order and gradients are taken by position, so the same gradients
 * give the same update on every worker. The state (t, m, v) round-trips through checkpoints.
 */
export class Adam {
  private m: tf.Variable[];
  private v: tf.Variable[];
  /** Steps taken. */
  t = 0;

  constructor(
    private readonly params: tf.Variable[],
    private readonly cfg: AdamConfig,
  ) {
    this.m = params.map((p) => zeroVariable(p.shape));
    this.v = params.map((p) => zeroVariable(p.shape));
  }

  /** One update with `grads[i]` for `params[i]`. Does not dispose the gradients. */
  apply(grads: tf.Tensor[], lr: number): void {
    if (grads.length !== this.params.length) throw new Error(`expected ${this.params.length} gradients, got ${grads.length}`);
    this.t += 1;
    const { beta1, beta2, epsilon } = this.cfg;
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    if (hasAdamKernel()) {
      const attrs: AdamUpdateAttrs = { beta1, beta2, epsilon, c2, stepSize: lr / c1 };
      grads.forEach((g, i) => {
        const [p, m, v] = tf.engine().runKernel(ADAM_UPDATE, { p: this.params[i], m: this.m[i], v: this.v[i], g }, attrs as never) as tf.Tensor[];
        this.m[i].assign(m);
        this.v[i].assign(v);
        this.params[i].assign(p);
        tf.dispose([p, m, v]);
      });
      return;
    }
    tf.tidy(() => {
      grads.forEach((g, i) => {
        const m = tf.add(tf.mul(this.m[i], beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(this.v[i], beta2), tf.mul(tf.square(g), 1 - beta2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        const denom = tf.add(tf.sqrt(tf.div(v, c2)), epsilon);
        this.params[i].assign(tf.sub(this.params[i], tf.mul(tf.div(m, denom), lr / c1)));
      });
    });
  }

  async read(): Promise<{ t: number; m: Float32Array[]; v: Float32Array[] }> {
    return {
      t: this.t,
      m: await Promise.all(this.m.map((x) => x.data() as Promise<Float32Array>)),
      v: await Promise.all(this.v.map((x) => x.data() as Promise<Float32Array>)),
    };
  }

  write(state: { t: number; m: Float32Array[]; v: Float32Array[] }): void {
    if (state.m.length !== this.m.length || state.v.length !== this.v.length) throw new Error('optimizer state does not match the model');
    this.t = state.t;
    tf.tidy(() => {
      state.m.forEach((x, i) => this.m[i].assign(tf.tensor(x, this.m[i].shape, 'float32')));
      state.v.forEach((x, i) => this.v[i].assign(tf.tensor(x, this.v[i].shape, 'float32')));
    });
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}

/** tf.variable keeps its initial tensor alive; free it once the variable holds the values. */
function zeroVariable(shape: number[]): tf.Variable {
  const zeros = tf.zeros(shape);
  const v = tf.variable(zeros, false);
  zeros.dispose();
  return v;
}

/** Step decay: lr × gamma^(number of milestones ≤ epoch); epochs count from 0. */
export function learningRate(base: number, epoch: number, milestones: number[], gamma: number): number {
  return base * gamma ** milestones.filter((m) => epoch >= m).length;
}
