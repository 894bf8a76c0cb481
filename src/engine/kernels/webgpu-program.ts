import type { TensorInfo } from '@tensorflow/tfjs';

/** What tfjs-backend-webgpu exports as `webgpu_util` (passed in: importing the backend registers it). */
export interface WebgpuUtil {
  flatDispatchLayout(shape: number[]): { x: number[] };
  computeDispatch(layout: { x: number[] }, outputShape: number[], workgroupSize: [number, number, number]): [number, number, number];
}

export type WebgpuUniform = { type: 'int32' | 'uint32' | 'float32'; data: number[] };

/**
 * The part of tfjs-backend-webgpu's backend that slfer-dist's WGSL programs use. A program is an
 * object with variableNames, outputShape, workgroupSize, dispatchLayout, dispatch, shaderKey and
 * getUserCode(); tfjs adds the bindings, uniforms (input/output shapes first, then the program's
 * own) and helpers such as getX(...) and setOutputAtIndex. Make a new program object per call:
 * runWebGPUProgram rewrites its shaderKey.
 */
export interface WebgpuBackend {
  runWebGPUProgram(program: object, inputs: TensorInfo[], dtype: 'float32', uniforms?: WebgpuUniform[]): TensorInfo;
  disposeData(dataId: object): boolean;
}

export interface SlicePlan {
  /** Number of slices (1: nothing to sum afterwards). */
  splits: number;
  /** Rows per slice, a multiple of `align`. */
  chunk: number;
}

/**
 * Cuts `rows` into slices for a reduction spread over workgroups, which a second pass then sums:
 * as many as bring tiles × slices to `target` workgroups, none under `minRows` rows.
 */
export function planSlices(rows: number, tiles: number, o: { target: number; minRows: number; align?: number }): SlicePlan {
  const align = o.align ?? 1;
  const want = Math.max(1, Math.min(Math.ceil(o.target / tiles), Math.floor(rows / o.minRows)));
  const chunk = Math.ceil(Math.ceil(rows / want) / align) * align;
  return { splits: Math.max(1, Math.ceil(rows / chunk)), chunk };
}

/**
 * A program with one thread per element of `outputShape` (tfjs's flat dispatch): its WGSL defines
 * `fn main(index : i32)`, guarded by `index < uniforms.size`. Subclasses give the inputs, their own
 * uniforms, a shader key and getUserCode().
 */
export abstract class FlatProgram {
  readonly size = true;
  readonly workgroupSize: [number, number, number];
  readonly dispatchLayout: { x: number[] };
  dispatch: [number, number, number];

  constructor(
    readonly variableNames: string[],
    readonly outputShape: number[],
    public shaderKey: string,
    readonly uniforms: string,
    util: WebgpuUtil,
    threads = 64,
  ) {
    this.workgroupSize = [threads, 1, 1];
    this.dispatchLayout = util.flatDispatchLayout(outputShape);
    this.dispatch = util.computeDispatch(this.dispatchLayout, outputShape, this.workgroupSize);
  }

  abstract getUserCode(): string;
}
