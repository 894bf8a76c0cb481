/**
 * Piscina worker of the landmarks method: face detection and face mesh with @vladmandic/human on
 * tfjs-backend-wasm, then the mesh's polygons filled into a 19-class mask (face-mesh-regions.ts).
 *
 * Why a worker thread: in the same thread, human would share slfer-dist's tfjs (its Node build
 * requires the same @tensorflow packages) and change it: it makes wasm the current backend, turns on
 * tfjs's production mode, points the wasm backend at its own binaries and registers a FloorMod
 * kernel for wasm. A worker has its own module instances, so its tfjs is its own and the caller's
 * engine, backends and kernels stay as they were; N workers also label N images at once.
 *
 * Deterministic: no frame-to-frame caching (cacheSensitivity 0, no skipped frames), the same wasm
 * kernels in every worker, so an image gets the same mask whichever worker labels it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { workerData } from 'piscina';
import { errors, toWire, type WireError } from '../errors.js';
import { MESH_POINTS, meshToMask } from './face-mesh-regions.js';
import type { Point } from './polygon-fill.js';

export interface LandmarksWorkerData {
  entry: string;
  modelsDir: string;
  wasmDir: string;
}

export type LandmarksTask = { kind: 'init' } | { kind: 'label'; rgb: Uint8Array; width: number; height: number };

/** A mask (null: no face), with the worker's live tensor count after it, to show leaks. */
export type LandmarksResult = { mask: Uint8Array | null; tensors: number; threadId: number } | { error: WireError };

/** The little of human's and tfjs's API used here (the package is optional, so are its types). */
interface Tensor {
  dispose(): void;
}
interface Tf {
  tensor3d(values: Uint8Array, shape: [number, number, number], dtype: 'int32'): Tensor;
  image: { resizeBilinear(t: Tensor, size: [number, number], alignCorners: boolean, halfPixelCenters: boolean): Tensor };
  memory(): { numTensors: number };
  io: { registerLoadRouter(router: (url: string | string[]) => { load(): Promise<unknown> } | null): void };
}
interface Human {
  tf: Tf;
  load(): Promise<void>;
  detect(input: Tensor): Promise<{ face: { mesh: number[][] }[]; error?: string | null }>;
  models: { models: Record<string, unknown> };
}

/** Human only finds faces at its models' scale well enough when small images are enlarged first. */
const MIN_SIDE = 300;
/** Human refuses inputs larger than this (4K). */
const MAX_SIDE = 3840;
const MODELS = ['blazeface', 'facemesh', 'iris'];

let human: Promise<Human> | undefined;

export default async function landmarksTask(task: LandmarksTask): Promise<LandmarksResult> {
  try {
    const h = await (human ??= start(workerData as LandmarksWorkerData));
    if (task.kind === 'init') return { mask: null, tensors: h.tf.memory().numTensors, threadId };
    const mask = await label(h, task.rgb, task.width, task.height);
    return { mask, tensors: h.tf.memory().numTensors, threadId };
  } catch (e) {
    return { error: toWire(e) };
  }
}

async function start(d: LandmarksWorkerData): Promise<Human> {
  const mod = (await import(pathToFileURL(d.entry).href)) as { Human?: new (c: object) => Human; default?: { Human?: new (c: object) => Human } };
  const HumanClass = mod.Human ?? mod.default?.Human;
  if (!HumanClass) throw errors.optionalPackageMissing('@vladmandic/human', '3.3.6', '`parse --method landmarks`', `${d.entry} exports no Human class`, 'reinstall it');
  const h = new HumanClass({
    backend: 'wasm',
    wasmPath: d.wasmDir.endsWith('/') ? d.wasmDir : `${d.wasmDir}/`,
    modelBasePath: pathToFileURL(d.modelsDir).href + '/',
    debug: false,
    async: false,
    warmup: 'none',
    cacheSensitivity: 0,
    cacheModels: false,
    filter: { enabled: false },
    gesture: { enabled: false },
    body: { enabled: false },
    hand: { enabled: false },
    object: { enabled: false },
    segmentation: { enabled: false },
    face: {
      enabled: true,
      // Rotation correction for tilted faces (SFEW); one face, the most confident.
      detector: { rotation: true, maxDetected: 1, skipFrames: 0, skipTime: 0, minConfidence: 0.2, return: false },
      mesh: { enabled: true },
      // The iris model refines the eyelid contours the eye polygons follow.
      iris: { enabled: true, skipFrames: 0, skipTime: 0 },
      attention: { enabled: false },
      emotion: { enabled: false },
      description: { enabled: false },
      antispoof: { enabled: false },
      liveness: { enabled: false },
      gear: { enabled: false },
    },
  });
  // tfjs on Node without tfjs-node has no file:// loader; this worker's tfjs is human's alone.
  h.tf.io.registerLoadRouter((url) => (typeof url === 'string' && url.startsWith('file://') ? { load: () => loadArtifacts(fileURLToPath(url)) } : null));
  await h.load();
  // human logs a model that fails to load and carries on without it: every image would then be "no face".
  const failed = MODELS.filter((m) => !h.models.models[m]);
  if (failed.length > 0) {
    throw errors.optionalPackageMissing('@vladmandic/human', '3.3.6', '`parse --method landmarks`', `its models ${failed.join(', ')} in ${d.modelsDir} did not load`, 'reinstall it (npm ci)');
  }
  return h;
}

/** A tfjs graph model's model.json and weight shards, as tfjs's ModelArtifacts. */
async function loadArtifacts(jsonPath: string): Promise<unknown> {
  const json = JSON.parse(await readFile(jsonPath, 'utf8')) as {
    modelTopology: unknown;
    format?: string;
    generatedBy?: string;
    convertedBy?: string;
    signature?: unknown;
    userDefinedMetadata?: unknown;
    weightsManifest: { paths: string[]; weights: unknown[] }[];
  };
  const dir = join(jsonPath, '..');
  const shards = await Promise.all(json.weightsManifest.flatMap((g) => g.paths).map((p) => readFile(join(dir, p))));
  const all = Buffer.concat(shards);
  return {
    modelTopology: json.modelTopology,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    signature: json.signature,
    userDefinedMetadata: json.userDefinedMetadata,
    weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
  };
}

async function label(h: Human, rgb: Uint8Array, width: number, height: number): Promise<Uint8Array | null> {
  const scale = Math.max(1, Math.min(Math.ceil(MIN_SIDE / Math.min(width, height)), Math.floor(MAX_SIDE / Math.max(width, height))));
  const tf = h.tf;
  const pixels = tf.tensor3d(rgb, [height, width, 3], 'int32');
  let input = pixels;
  if (scale > 1) {
    // Half-pixel centres: upscaled pixel u covers original [u / scale, (u + 1) / scale).
    input = tf.image.resizeBilinear(pixels, [height * scale, width * scale], false, true);
    pixels.dispose();
  }
  let result: Awaited<ReturnType<Human['detect']>>;
  try {
    result = await h.detect(input);
  } finally {
    input.dispose();
  }
  if (result.error) throw errors.internal(`face detection failed: ${result.error}`);
  const face = result.face[0];
  if (!face || face.mesh.length < MESH_POINTS) return null;
  // human truncates mesh coordinates to integers: the point lies in [c, c + 1), best guessed at c + 0.5.
  const mesh: Point[] = face.mesh.map(([x, y]) => [(x + 0.5) / scale, (y + 0.5) / scale]);
  return meshToMask(mesh, width, height);
}
