import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { BATCH_NORM_BACKWARD, BATCH_NORM_FORWARD } from './batch-norm-kernels.js';
import { FlatProgram, planSlices, type WebgpuBackend, type WebgpuUniform, type WebgpuUtil } from './webgpu-program.js';

/**
 * Training-mode batch norm for webgpu (the kernel pair of batch-norm-kernels.ts). tfjs's path is
 * tf.moments plus a dozen elementwise ops, and each per-channel reduction over N·H·W first
 * transposes the activation so the channels come first: ~17 passes over the tensor each way. Here:
 *   forward:  per-channel partial sums over slices of rows → statistics → y    (2 passes over x)
 *   backward: partial Σdy and Σdy·x̂ → sums → dx                              (2 passes over dy, x)
 * Sums run in f32 over short slices and are then added slice by slice; the forward sums x − x[0,c]
 * (a per-channel shift) so the variance does not cancel when the mean is large against the spread.
 */
const CH = 64;
const LANES = 4;
const MIN_ROWS = 256;
const TARGET_WORKGROUPS = 1024;

const planRows = (rows: number, C: number) => planSlices(rows, Math.ceil(C / CH), { target: TARGET_WORKGROUPS, minRows: MIN_ROWS });

/**
 * Per-channel partial sums over one slice of rows: out[split, 0, c] and out[split, 1, c].
 * Forward: Σ(x − x[0,c]) and Σ(x − x[0,c])². Backward: Σdy and Σdy·(x − mean)·rstd.
 */
class PartialSumsProgram {
  variableNames: string[];
  uniforms = 'rows : i32, C : i32, chunk : i32,';
  workgroupSize: [number, number, number] = [CH, LANES, 1];
  outputShape: number[];
  dispatchLayout = { x: [2], y: [0], z: [] as number[] };
  dispatch: [number, number, number];
  shaderKey: string;

  constructor(
    private readonly backward: boolean,
    C: number,
    splits: number,
  ) {
    this.variableNames = backward ? ['dy', 'x', 'mean', 'rstd'] : ['x'];
    this.outputShape = [splits, 2, C];
    this.dispatch = [Math.ceil(C / CH), splits, 1];
    this.shaderKey = `slferBatchNormPartial_${backward}`;
  }

  getUserCode(): string {
    const term = this.backward
      ? `let g = dy[i];
              let xh = (x[i] - m) * rs;
              s1 = s1 + g;
              s2 = s2 + g * xh;`
      : `let d = x[i] - shift;
              s1 = s1 + d;
              s2 = s2 + d * d;`;
    const setup = this.backward ? 'let m = mean[c]; let rs = rstd[c];' : 'let shift = x[c];';
    return `
      var<workgroup> red : array<vec2<f32>, ${CH * LANES}>;
      fn main() {
        let lane = i32(localId.y);
        let c = i32(workgroupId.x) * ${CH} + i32(localId.x);
        let split = i32(workgroupId.y);
        let begin = split * uniforms.chunk;
        let end = min(begin + uniforms.chunk, uniforms.rows);
        var s1 = 0.0;
        var s2 = 0.0;
        if (c < uniforms.C) {
          ${setup}
          for (var r = begin + lane; r < end; r = r + ${LANES}) {
            let i = r * uniforms.C + c;
            ${term}
          }
        }
        red[i32(localIndex)] = vec2<f32>(s1, s2);
        workgroupBarrier();
        if (lane == 0 && c < uniforms.C) {
          var t = red[i32(localId.x)];
          for (var l = 1; l < ${LANES}; l = l + 1) {
            t = t + red[l * ${CH} + i32(localId.x)];
          }
          result[(split * 2) * uniforms.C + c] = t.x;
          result[(split * 2 + 1) * uniforms.C + c] = t.y;
        }
      }
    `;
  }
}

/**
 * One per-channel value from the partial sums, chosen by `which`:
 * forward 0 mean, 1 biased variance, 2 rstd; backward 0 Σdy, 1 Σdy·x̂.
 */
class FinishProgram extends FlatProgram {
  constructor(
    private readonly backward: boolean,
    C: number,
    util: WebgpuUtil,
  ) {
    super(backward ? ['partial'] : ['partial', 'x'], [C], `slferBatchNormFinish_${backward}`, 'splits : i32, n : f32, eps : f32, which : i32,', util);
  }

  getUserCode(): string {
    const C = 'uniforms.outShape';
    const value = this.backward
      ? 'let v = select(s.x, s.y, uniforms.which == 1);'
      : `let d = s.x / uniforms.n;
          let variance = max(0.0, s.y / uniforms.n - d * d);
          var v = x[c] + d;
          if (uniforms.which == 1) { v = variance; }
          if (uniforms.which == 2) { v = 1.0 / sqrt(variance + uniforms.eps); }`;
    return `
      fn main(c : i32) {
        if (c < uniforms.size) {
          var s = vec2<f32>(0.0);
          for (var i = 0; i < uniforms.splits; i = i + 1) {
            s = s + vec2<f32>(partial[(i * 2) * ${C} + c], partial[(i * 2 + 1) * ${C} + c]);
          }
          ${value}
          setOutputAtIndex(c, v);
        }
      }
    `;
  }
}

/** y = (x − mean)·rstd·gamma + beta, or dx = gamma·rstd·(dy − Σdy/n − x̂·Σdy·x̂/n). */
class ApplyProgram extends FlatProgram {
  constructor(
    private readonly backward: boolean,
    shape: number[],
    util: WebgpuUtil,
  ) {
    const inputs = backward ? ['dy', 'x', 'mean', 'rstd', 'gamma', 'sumDy', 'sumDyXhat'] : ['x', 'mean', 'rstd', 'gamma', 'beta'];
    super(inputs, shape, `slferBatchNormApply_${backward}`, 'C : i32, n : f32,', util, 256);
  }

  getUserCode(): string {
    const body = this.backward
      ? `let xh = (x[index] - mean[c]) * rstd[c];
          let v = gamma[c] * rstd[c] * (dy[index] - sumDy[c] / uniforms.n - xh * sumDyXhat[c] / uniforms.n);`
      : 'let v = (x[index] - mean[c]) * rstd[c] * gamma[c] + beta[c];';
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let c = index % uniforms.C;
          ${body}
          setOutputAtIndex(index, v);
        }
      }
    `;
  }
}

const int = (v: number): WebgpuUniform => ({ type: 'int32', data: [v] });
const float = (v: number): WebgpuUniform => ({ type: 'float32', data: [v] });

export function webgpuBatchNormKernels(util: WebgpuUtil): KernelConfig[] {
  return [
    {
      kernelName: BATCH_NORM_FORWARD,
      backendName: 'webgpu',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const { x, gamma, beta } = inputs as { x: TensorInfo; gamma: TensorInfo; beta: TensorInfo };
        const gpu = backend as unknown as WebgpuBackend;
        const C = x.shape[3];
        const rows = x.shape[0] * x.shape[1] * x.shape[2];
        const { splits, chunk } = planRows(rows, C);
        const partial = gpu.runWebGPUProgram(new PartialSumsProgram(false, C, splits), [x], 'float32', [int(rows), int(C), int(chunk)]);
        const eps = (attrs as { epsilon: number }).epsilon;
        const [mean, variance, rstd] = [0, 1, 2].map((which) =>
          gpu.runWebGPUProgram(new FinishProgram(false, C, util), [partial, x], 'float32', [int(splits), float(rows), float(eps), int(which)]),
        );
        gpu.disposeData(partial.dataId);
        const y = gpu.runWebGPUProgram(new ApplyProgram(false, x.shape, util), [x, mean, rstd, gamma, beta], 'float32', [int(C), float(rows)]);
        return [y, mean, variance, rstd];
      },
    },
    {
      kernelName: BATCH_NORM_BACKWARD,
      backendName: 'webgpu',
      kernelFunc: ({ inputs, backend }) => {
        const { dy, x, mean, rstd, gamma } = inputs as Record<'dy' | 'x' | 'mean' | 'rstd' | 'gamma', TensorInfo>;
        const gpu = backend as unknown as WebgpuBackend;
        const C = x.shape[3];
        const rows = x.shape[0] * x.shape[1] * x.shape[2];
        const { splits, chunk } = planRows(rows, C);
        const partial = gpu.runWebGPUProgram(new PartialSumsProgram(true, C, splits), [dy, x, mean, rstd], 'float32', [int(rows), int(C), int(chunk)]);
        const [sumDy, sumDyXhat] = [0, 1].map((which) => gpu.runWebGPUProgram(new FinishProgram(true, C, util), [partial], 'float32', [int(splits), float(rows), float(0), int(which)]));
        gpu.disposeData(partial.dataId);
        const dx = gpu.runWebGPUProgram(new ApplyProgram(true, x.shape, util), [dy, x, mean, rstd, gamma, sumDy, sumDyXhat], 'float32', [int(C), float(rows)]);
        return [dx, sumDyXhat, sumDy];
      },
    },
  ];
}
