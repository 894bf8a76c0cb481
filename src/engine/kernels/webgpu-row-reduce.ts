import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { FlatProgram, type WebgpuBackend, type WebgpuUtil } from './webgpu-program.js';

/**
 * Sum and Max over a short innermost axis on webgpu: one thread per row. tfjs-backend-webgpu
 * gives every output its own workgroup with a shared-memory tree, which is right for long rows but
 * not for the per-pixel softmax over SLFER's 8 facial parts (B·H·W rows of 8: logSoftmax's Max and
 * Sum, and the Sum of its gradient). On lavapipe those reductions took a quarter of the step.
 * Other axes, longer rows and non-float inputs go to tfjs's own kernel.
 */
const MAX_ROW = 64;

type Op = 'Sum' | 'Max';

class RowReduceProgram extends FlatProgram {
  constructor(
    private readonly op: Op,
    outputShape: number[],
    util: WebgpuUtil,
  ) {
    super(['x'], outputShape, `slferRowReduce_${op}`, 'n : i32,', util);
  }

  getUserCode(): string {
    const combine = this.op === 'Sum' ? 'acc = acc + v;' : 'acc = max(acc, v);';
    return `
      fn main(row : i32) {
        if (row < uniforms.size) {
          let base = row * uniforms.n;
          var acc = x[base];
          for (var i = 1; i < uniforms.n; i = i + 1) {
            let v = x[base + i];
            ${combine}
          }
          setOutputAtIndex(row, acc);
        }
      }
    `;
  }
}

function rowReduceKernel(op: Op, util: WebgpuUtil, fallback: KernelFunc | undefined): KernelConfig {
  return {
    kernelName: op === 'Sum' ? tf.Sum : tf.Max,
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const { x } = args.inputs as { x: TensorInfo };
      // Sum's attribute is `axis`, Max's `reductionIndices`.
      const { axis, reductionIndices, keepDims } = args.attrs as unknown as { axis?: number | number[]; reductionIndices?: number | number[]; keepDims: boolean };
      const rank = x.shape.length;
      const axes = tf.util.parseAxisParam((op === 'Sum' ? axis : reductionIndices) ?? [...x.shape.keys()], x.shape);
      const n = x.shape[rank - 1];
      const rows = tf.util.sizeFromShape(x.shape) / Math.max(1, n);
      const mine = x.dtype === 'float32' && rank >= 1 && axes.length === 1 && axes[0] === rank - 1 && n >= 1 && n <= MAX_ROW && rows >= 1;
      if (!mine) {
        if (!fallback) throw new Error(`${op} on webgpu: tfjs-backend-webgpu's own kernel is not registered`);
        return fallback(args);
      }
      const outShape = keepDims ? [...x.shape.slice(0, -1), 1] : x.shape.slice(0, -1);
      const program = new RowReduceProgram(op, outShape, util);
      return (args.backend as unknown as WebgpuBackend).runWebGPUProgram(program, [x], 'float32', [{ type: 'int32', data: [n] }]);
    },
  };
}

export function webgpuRowReduceKernels(util: WebgpuUtil, own: (name: string) => KernelFunc | undefined): KernelConfig[] {
  return [rowReduceKernel('Sum', util, own(tf.Sum)), rowReduceKernel('Max', util, own(tf.Max))];
}
