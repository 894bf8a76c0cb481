import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, ResizeBilinearGradAttrs, TensorInfo } from '@tensorflow/tfjs';
import { FlatProgram, type WebgpuBackend, type WebgpuUtil } from './webgpu-program.js';

/**
 * ResizeBilinearGrad for webgpu that honours `halfPixelCenters`, as the host kernel does
 * (resize-bilinear-grad.ts): tfjs-backend-webgpu's own ignores it, so the gradient of ST's
 * PyTorch-style upsampling came out shifted. One thread per dx element gathers the dy elements
 * whose source rows and columns (same rule as the forward: top = max(0, ⌊f⌋), bottom =
 * min(n − 1, ⌈f⌉)) land on it.
 */
class ResizeBilinearGradProgram extends FlatProgram {
  constructor(imageShape: number[], util: WebgpuUtil) {
    const uniforms = 'rowRatio : f32, colRatio : f32, invRowRatio : f32, invColRatio : f32, winHeight : i32, winWidth : i32, halfPixel : i32,';
    super(['dy'], imageShape, 'slferResizeBilinearGrad', uniforms, util);
  }

  getUserCode(): string {
    return `
      fn source(i : i32, ratio : f32) -> f32 {
        if (uniforms.halfPixel == 1) { return ratio * (f32(i) + 0.5) - 0.5; }
        return ratio * f32(i);
      }
      fn main(index : i32) {
        if (index < uniforms.size) {
          let coords = getOutputCoords();
          let b = coords[0];
          let r = coords[1];
          let c = coords[2];
          let d = coords[3];
          let startR = i32(floor(f32(r) * uniforms.invRowRatio)) - uniforms.winHeight / 2;
          let startC = i32(floor(f32(c) * uniforms.invColRatio)) - uniforms.winWidth / 2;
          var acc = 0.0;
          for (var i = 0; i < uniforms.winHeight; i++) {
            let dyR = startR + i;
            if (dyR < 0 || dyR >= uniforms.dyShape[1]) { continue; }
            let fr = source(dyR, uniforms.rowRatio);
            let top = max(0, i32(floor(fr)));
            let bottom = min(uniforms.outShape[1] - 1, i32(ceil(fr)));
            let rowFrac = fr - f32(top);
            var wr = 0.0;
            if (r == top) { wr = wr + 1.0 - rowFrac; }
            if (r == bottom) { wr = wr + rowFrac; }
            if (r != top && r != bottom) { continue; }
            for (var j = 0; j < uniforms.winWidth; j++) {
              let dyC = startC + j;
              if (dyC < 0 || dyC >= uniforms.dyShape[2]) { continue; }
              let fc = source(dyC, uniforms.colRatio);
              let left = max(0, i32(floor(fc)));
              let right = min(uniforms.outShape[2] - 1, i32(ceil(fc)));
              let colFrac = fc - f32(left);
              var wc = 0.0;
              if (c == left) { wc = wc + 1.0 - colFrac; }
              if (c == right) { wc = wc + colFrac; }
              acc = acc + getDy(b, dyR, dyC, d) * wr * wc;
            }
          }
          setOutputAtIndex(index, acc);
        }
      }
    `;
  }
}

export const webgpuResizeBilinearGradKernel = (util: WebgpuUtil): KernelConfig => ({
  kernelName: tf.ResizeBilinearGrad,
  backendName: 'webgpu',
  kernelFunc: ({ inputs, attrs, backend }) => {
    const { images, dy } = inputs as { images: TensorInfo; dy: TensorInfo };
    const { alignCorners, halfPixelCenters } = attrs as unknown as ResizeBilinearGradAttrs & { halfPixelCenters: boolean };
    const [, inH, inW] = images.shape;
    const [, outH, outW] = dy.shape;
    const ratio = (inN: number, outN: number) => (alignCorners && outN > 1 ? (inN - 1) / (outN - 1) : inN / outN);
    const rowRatio = ratio(inH, outH);
    const colRatio = ratio(inW, outW);
    // dy rows that can reach dx row r lie within ±(1/ratio + 1) of r/ratio (one more for the half-pixel shift).
    const win = (inv: number) => 2 * Math.ceil(inv) + 4;
    const program = new ResizeBilinearGradProgram(images.shape, util);
    return (backend as unknown as WebgpuBackend).runWebGPUProgram(program, [dy], 'float32', [
      { type: 'float32', data: [rowRatio] },
      { type: 'float32', data: [colRatio] },
      { type: 'float32', data: [1 / rowRatio] },
      { type: 'float32', data: [1 / colRatio] },
      { type: 'int32', data: [win(1 / rowRatio)] },
      { type: 'int32', data: [win(1 / colRatio)] },
      { type: 'int32', data: [halfPixelCenters ? 1 : 0] },
    ]);
  },
});
