import * as tf from '@tensorflow/tfjs';
import type { Conv2DBackpropFilterAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { FlatProgram, planSlices, type WebgpuBackend, type WebgpuUtil } from './webgpu-program.js';

/**
 * Conv2DBackpropFilter for webgpu as one implicit-im2col matrix product with split-K:
 *   dW[k, co] = Σ_m X_col[m, k] · dY[m, co],  k = (kh, kw, ci), m = (n, oh, ow).
 * tfjs-backend-webgpu's own kernel gives each thread one filter element and loops over all of
 * N·OH·OW: a 7×7×3×64 stem at 224 px, batch 64, is 9,408 threads of 800k iterations each, which
 * is most of why training ran at 1/45 of the forward pass on an H200. Here a workgroup computes a
 * 64×64 tile of dW (64×16 or 64×32 for narrow layers) over one slice of m (tiles staged in
 * workgroup memory, 4×4 outputs per thread),
 * slices are summed by a second pass, and the slice count keeps the GPU full for every layer shape.
 */
const TILE_K = 64;
const TILE_M = 16;
/** Workgroups to aim for: enough to fill a large GPU (132 SMs on an H100/H200) several times. */
const TARGET_WORKGROUPS = 2048;
/** Fewest m rows per slice: below this the partial sums cost more than they spread. */
const MIN_CHUNK = 256;

/** Tile width along co: 64, or 16/32 for narrow layers, whose extra columns would be idle work. */
function tileCo(Co: number): number {
  return Co <= 16 ? 16 : Co <= 32 ? 32 : 64;
}

class FilterGradProgram {
  variableNames = ['x', 'dy'];
  uniforms = 'M : i32, K : i32, Co : i32, chunk : i32, kwci : i32, ci : i32, ohow : i32, ow : i32, stride : vec2<i32>, pad : vec2<i32>,';
  workgroupSize: [number, number, number];
  outputShape: number[];
  dispatchLayout = { x: [0], y: [1], z: [2] };
  dispatch: [number, number, number];
  shaderKey: string;
  private readonly tc: number;

  constructor(K: number, Co: number, splits: number, outputShape: number[]) {
    this.tc = tileCo(Co);
    // One thread per 4×4 block of the TILE_K × tc tile.
    this.workgroupSize = [(TILE_K / 4) * (this.tc / 4), 1, 1];
    this.outputShape = outputShape;
    this.dispatch = [Math.ceil(Co / this.tc), Math.ceil(K / TILE_K), splits];
    this.shaderKey = `slferConv2DBackpropFilterMM_${this.tc}`;
  }

  getUserCode(): string {
    const T = this.workgroupSize[0];
    const TC = this.tc;
    // As/Bs: TILE_M rows of the tile as vec4s, so the product loop reads 128 bits at a time.
    // Loads: thread t fills column t % width of a tile, every (T / width)-th row. Neighbouring
    // threads read neighbouring ci of x and co of dy, so loads are coalesced.
    return `
      var<workgroup> As : array<vec4<f32>, ${(TILE_M * TILE_K) / 4}>;
      var<workgroup> Bs : array<vec4<f32>, ${(TILE_M * TC) / 4}>;

      fn main() {
        let t = i32(localIndex);
        let c0 = i32(workgroupId.x) * ${TC};
        let k0 = i32(workgroupId.y) * ${TILE_K};
        let split = i32(workgroupId.z);
        let mBegin = split * uniforms.chunk;
        let mEnd = min(mBegin + uniforms.chunk, uniforms.M);
        let H = uniforms.xShape[1];
        let W = uniforms.xShape[2];

        let ak = t % ${TILE_K};
        let ar = t / ${TILE_K};
        let k = k0 + ak;
        let kOk = k < uniforms.K;
        let kh = k / uniforms.kwci;
        let kr = k % uniforms.kwci;
        let kw = kr / uniforms.ci;
        let ci = kr % uniforms.ci;
        let bc = t % ${TC};
        let br = t / ${TC};
        let co = c0 + bc;
        let coOk = co < uniforms.Co;

        let tx = t % ${TC / 4};
        let ty = t / ${TC / 4};
        var acc : array<vec4<f32>, 4>;
        // The trip count comes from uniforms alone: barriers need control flow WGSL can prove uniform,
        // and tfjs hands workgroupId over in a private variable. The last slice's overhang loads zeros.
        for (var step = 0; step < uniforms.chunk / ${TILE_M}; step = step + 1) {
          let m0 = mBegin + step * ${TILE_M};
          for (var row = ar; row < ${TILE_M}; row = row + ${T / TILE_K}) {
            let m = m0 + row;
            var a = 0.0;
            if (m < mEnd && kOk) {
              let n = m / uniforms.ohow;
              let p = m % uniforms.ohow;
              let ih = (p / uniforms.ow) * uniforms.stride.x - uniforms.pad.x + kh;
              let iw = (p % uniforms.ow) * uniforms.stride.y - uniforms.pad.y + kw;
              if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
                a = x[((n * H + ih) * W + iw) * uniforms.ci + ci];
              }
            }
            As[row * ${TILE_K / 4} + ak / 4][ak % 4] = a;
          }
          for (var row = br; row < ${TILE_M}; row = row + ${T / TC}) {
            let m = m0 + row;
            var b = 0.0;
            if (m < mEnd && coOk) {
              b = dy[m * uniforms.Co + co];
            }
            Bs[row * ${TC / 4} + bc / 4][bc % 4] = b;
          }
          workgroupBarrier();
          for (var mm = 0; mm < ${TILE_M}; mm = mm + 1) {
            let av = As[mm * ${TILE_K / 4} + ty];
            let bv = Bs[mm * ${TC / 4} + tx];
            acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
            acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
            acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
            acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
          }
          workgroupBarrier();
        }

        let base = split * uniforms.K * uniforms.Co;
        for (var j = 0; j < 4; j = j + 1) {
          let ko = k0 + ty * 4 + j;
          if (ko < uniforms.K) {
            for (var c = 0; c < 4; c = c + 1) {
              let cc = c0 + tx * 4 + c;
              if (cc < uniforms.Co) {
                result[base + ko * uniforms.Co + cc] = acc[j][c];
              }
            }
          }
        }
      }
    `;
  }
}

/** dW = Σ over slices of the partial products: one thread per dW element, reading down the slices. */
class SumSlicesProgram extends FlatProgram {
  constructor(outputShape: number[], util: WebgpuUtil) {
    super(['partial'], outputShape, 'slferSumSlices', 'splits : i32,', util, 256);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          var s = 0.0;
          for (var i = 0; i < uniforms.splits; i = i + 1) {
            s = s + partial[i * uniforms.size + index];
          }
          setOutputAtIndex(index, s);
        }
      }
    `;
  }
}

export function webgpuConv2dBackpropFilterKernel(util: WebgpuUtil, fallback: KernelFunc | undefined): KernelConfig {
  return {
    kernelName: tf.Conv2DBackpropFilter,
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const { inputs, backend, attrs } = args;
      const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
      const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as Conv2DBackpropFilterAttrs;
      if (dataFormat === 'NCHW') {
        if (!fallback) throw new Error('Conv2DBackpropFilter on webgpu: NCHW needs tfjs-backend-webgpu\'s own kernel, which is not registered');
        return fallback(args);
      }
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast');
      const [KH, KW, Ci, Co] = filterShape;
      const K = KH * KW * Ci;
      const M = info.batchSize * info.outHeight * info.outWidth;
      // Slices of m, each a whole number of TILE_M steps (1 slice: the product writes dW directly).
      const tiles = Math.ceil(K / TILE_K) * Math.ceil(Co / tileCo(Co));
      const { splits, chunk } = planSlices(M, tiles, { target: TARGET_WORKGROUPS, minRows: MIN_CHUNK, align: TILE_M });
      const gpu = backend as unknown as WebgpuBackend;
      const uniforms = [
        { type: 'int32' as const, data: [M] },
        { type: 'int32' as const, data: [K] },
        { type: 'int32' as const, data: [Co] },
        { type: 'int32' as const, data: [chunk] },
        { type: 'int32' as const, data: [KW * Ci] },
        { type: 'int32' as const, data: [Ci] },
        { type: 'int32' as const, data: [info.outHeight * info.outWidth] },
        { type: 'int32' as const, data: [info.outWidth] },
        { type: 'int32' as const, data: [info.strideHeight, info.strideWidth] },
        { type: 'int32' as const, data: [info.padInfo.top, info.padInfo.left] },
      ];
      if (splits === 1) return gpu.runWebGPUProgram(new FilterGradProgram(K, Co, 1, filterShape), [x, dy], 'float32', uniforms);
      const partial = gpu.runWebGPUProgram(new FilterGradProgram(K, Co, splits, [splits, K, Co]), [x, dy], 'float32', uniforms);
      const out = gpu.runWebGPUProgram(new SumSlicesProgram(filterShape, util), [partial], 'float32', [{ type: 'int32', data: [splits] }]);
      gpu.disposeData(partial.dataId);
      return out;
    },
  };
}
