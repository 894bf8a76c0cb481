import * as tf from '@tensorflow/tfjs';
import { Rng, hash32 } from '../util/rng.js';

export type Init =
  | { kind: 'heNormalFanOut'; fanOut: number } // torchvision ResNet convs
  | { kind: 'uniform'; bound: number } // PyTorch nn.Linear / conv bias default
  | { kind: 'const'; value: number };

export interface ParamSpec {
  name: string;
  shape: number[];
  init: Init;
}

/**
 * The model's state in one fixed order: trainable parameters (what gradients, the optimizer, the
 * all-reduce and checkpoints index by position) and buffers (BatchNorm moving statistics: state,
 * not gradients). The order is the order of declaration, which the network builder fixes.
 */
export class ParamStore {
  readonly params: tf.Variable[] = [];
  readonly buffers: tf.Variable[] = [];
  readonly paramSpecs: ParamSpec[] = [];
  readonly bufferSpecs: ParamSpec[] = [];
  private readonly byName = new Map<string, tf.Variable>();

  constructor(private readonly seed: number) {}

  param(name: string, shape: number[], init: Init): tf.Variable {
    return this.add(name, shape, init, true);
  }

  buffer(name: string, shape: number[], init: Init): tf.Variable {
    return this.add(name, shape, init, false);
  }

  get(name: string): tf.Variable {
    const v = this.byName.get(name);
    if (!v) throw new Error(`no parameter named ${name}`);
    return v;
  }

  get paramCount(): number {
    return this.paramSpecs.reduce((n, s) => n + size(s.shape), 0);
  }

  /** Every parameter and buffer as float32 arrays, in order (for checkpoints and checksums). */
  async read(): Promise<{ params: Float32Array[]; buffers: Float32Array[] }> {
    return {
      params: await Promise.all(this.params.map((v) => v.data() as Promise<Float32Array>)),
      buffers: await Promise.all(this.buffers.map((v) => v.data() as Promise<Float32Array>)),
    };
  }

  /** Overwrites every parameter and buffer (checkpoint restore, weight broadcast). */
  write(params: Float32Array[], buffers: Float32Array[]): void {
    if (params.length !== this.params.length || buffers.length !== this.buffers.length) {
      throw new Error(`expected ${this.params.length} parameters and ${this.buffers.length} buffers`);
    }
    const assign = (vars: tf.Variable[], specs: ParamSpec[], values: Float32Array[]) =>
      vars.forEach((v, i) => {
        if (values[i].length !== size(specs[i].shape)) throw new Error(`${specs[i].name}: expected ${size(specs[i].shape)} values, got ${values[i].length}`);
        tf.tidy(() => v.assign(tf.tensor(values[i], specs[i].shape, 'float32')));
      });
    assign(this.params, this.paramSpecs, params);
    assign(this.buffers, this.bufferSpecs, buffers);
  }

  dispose(): void {
    for (const v of [...this.params, ...this.buffers]) v.dispose();
    this.params.length = 0;
    this.buffers.length = 0;
    this.byName.clear();
  }

  private add(name: string, shape: number[], init: Init, trainable: boolean): tf.Variable {
    if (this.byName.has(name)) throw new Error(`duplicate parameter name ${name}`);
    // Each tensor draws from its own stream, keyed by its name: adding a layer never changes the
    // initial values of the others.
    const values = initialValues(shape, init, new Rng(this.seed, hash32(...Array.from(name, (c) => c.charCodeAt(0)))));
    const initial = tf.tensor(values, shape, 'float32');
    const v = tf.variable(initial, trainable, `slfer/${name}/${uniqueSuffix++}`);
    initial.dispose();
    (trainable ? this.params : this.buffers).push(v);
    (trainable ? this.paramSpecs : this.bufferSpecs).push({ name, shape, init });
    this.byName.set(name, v);
    return v;
  }
}

// tfjs variable names are global to the engine; models built side by side (tests, eval) must not clash.
let uniqueSuffix = 0;

export function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function initialValues(shape: number[], init: Init, rng: Rng): Float32Array {
  const out = new Float32Array(size(shape));
  switch (init.kind) {
    case 'const':
      out.fill(init.value);
      break;
    case 'uniform':
      for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-init.bound, init.bound);
      break;
    case 'heNormalFanOut': {
      const std = Math.sqrt(2 / init.fanOut);
      for (let i = 0; i < out.length; i++) out[i] = rng.normal() * std;
      break;
    }
  }
  return out;
}
