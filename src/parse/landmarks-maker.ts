/**
 * `parse --method landmarks`: 19-class masks without any face-parsing weights, from the face mesh
 * of @vladmandic/human (an optional dependency), for users who have no BiSeNet checkpoint.
 *
 * Not the paper's protocol, and `description` says so: the paper labels faces with BiSeNet trained
 * on CelebAMask-HQ; these masks are polygons filled through MediaPipe's mesh contours
 * (face-mesh-regions.ts). They hold skin, brows, eyes, nose, lips and mouth; everything outside the
 * face oval (hair, ears, neck, clothes, hat, background) is UNKNOWN_CLASS (255), which the ST loss
 * and the CT counts leave out. No mask ever says "background".
 *
 * Labelling runs on worker threads (landmarks-worker.ts says why): label() may be called
 * concurrently, and `threads` images are then labelled at once.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { PARSING_CLASSES, UNKNOWN_CLASS } from '../data/labels.js';
import { errors, fromWire, isSlferError } from '../errors.js';
import { compiledSibling } from '../util/compiled-path.js';
import { sha256File } from '../util/sha256-file.js';
import { REGIONS } from './face-mesh-regions.js';
import { findHumanPackage, type HumanPackage } from './human-package.js';
import type { LandmarksResult, LandmarksTask, LandmarksWorkerData } from './landmarks-worker.js';
import type { MaskMaker } from './mask-maker.js';

export interface LandmarksMakerOptions {
  /** Worker threads, each with its own models (about 30 MB); default min(2, available cores). */
  threads?: number;
}

export interface LandmarksMaker extends MaskMaker {
  /** Per worker thread id, its live tensors after its latest image: constant unless tensors leak. */
  readonly workerTensors: ReadonlyMap<number, number>;
}

/** The model files the worker loads, hashed into `description` so a mask set names its models exactly. */
const MODEL_FILES = ['blazeface.json', 'blazeface.bin', 'facemesh.json', 'facemesh.bin', 'iris.json', 'iris.bin'];

export async function createLandmarksMaker(options: LandmarksMakerOptions = {}): Promise<LandmarksMaker> {
  const threads = options.threads ?? Math.min(2, availableParallelism());
  if (!Number.isInteger(threads) || threads < 1) {
    throw errors.invalidArgument('landmarks threads', `${threads} is not a positive integer`, 'pass --threads N with N >= 1');
  }
  const pkg = findHumanPackage();
  const description = await describe(pkg, threads);
  const workerData: LandmarksWorkerData = { entry: pkg.entry, modelsDir: pkg.modelsDir, wasmDir: pkg.wasmDir };
  const pool = new Piscina<LandmarksTask, LandmarksResult>({
    filename: compiledSibling(import.meta.url, 'landmarks-worker.js'),
    workerData,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: Number.MAX_SAFE_INTEGER,
  });
  const workerTensors = new Map<number, number>();
  const run = async (task: LandmarksTask): Promise<Uint8Array | null> => {
    let r: LandmarksResult;
    try {
      r = await pool.run(task);
    } catch (e) {
      throw isSlferError(e) ? e : errors.internal(`a landmarks worker failed: ${(e as Error).message ?? String(e)}`);
    }
    if ('error' in r) throw fromWire(r.error, 'a landmarks worker');
    workerTensors.set(r.threadId, r.tensors);
    return r.mask;
  };
  try {
    // One start-up per worker, all at once: a missing or broken model fails here, not on the first image.
    await Promise.all(Array.from({ length: threads }, () => run({ kind: 'init' })));
  } catch (e) {
    await pool.destroy();
    throw e;
  }

  return {
    method: 'landmarks',
    description,
    workerTensors,
    async label(rgb: Uint8Array, width: number, height: number): Promise<Uint8Array | null> {
      if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || rgb.length !== width * height * 3) {
        throw errors.invalidArgument('landmarks label', `${rgb.length} bytes for a ${width}x${height} RGB image (expected ${width * height * 3})`, 'pass height × width × 3 RGB bytes, row-major');
      }
      return run({ kind: 'label', rgb, width, height });
    },
    dispose(): void {
      void pool.destroy().catch(() => undefined);
    },
  };
}

async function describe(pkg: HumanPackage, threads: number): Promise<Record<string, unknown>> {
  const hashes = await Promise.all(MODEL_FILES.map((f) => sha256File(join(pkg.modelsDir, f))));
  return {
    method: 'landmarks',
    protocol:
      "not the paper's: the paper labels faces with BiSeNet (face-parsing.PyTorch) trained on CelebAMask-HQ; these masks are polygons filled through a face mesh, with no ears, neck, clothes, hair, hat or background",
    package: `@vladmandic/human@${pkg.version}`,
    models: {
      detector: 'BlazeFace (MediaPipe), models/blazeface',
      mesh: 'MediaPipe FaceMesh, 468 points, models/facemesh',
      iris: 'MediaPipe Iris (refines the eyelid contours), models/iris',
      sha256: Object.fromEntries(MODEL_FILES.map((f, i) => [f, hashes[i]])),
    },
    engine: `@tensorflow/tfjs-backend-wasm@${pkg.wasmVersion} (XNNPACK) on ${threads} worker thread(s), each with its own copy of the models`,
    threads,
    input: 'images smaller than 300 px on their short side are enlarged (bilinear, integer factor) before detection; one face per image, the most confident',
    polygons:
      "MediaPipe face_mesh_connections contours walked in order: FACEMESH_FACE_OVAL (skin), _LEFT/RIGHT_EYEBROW (region between the lower and upper chain), _LEFT/RIGHT_EYE (eyelids), _LIPS (u_lip and l_lip between the outer and inner contours, mouth inside the inner), nose the convex hull of FACEMESH_NOSE's points; a pixel is a part's when its centre is inside (even-odd scanline), parts painted in this order over skin: nose, brows, eyes, lips, mouth",
    classes: REGIONS.map((r) => PARSING_CLASSES[r.classId]),
    leftRight: "l_* is the subject's own left (MediaPipe's LEFT_*), on the image's right in an unmirrored photo",
    unknown: {
      value: UNKNOWN_CLASS,
      where: 'every pixel outside the face oval: hair, ears, neck, clothes, hat and background cannot be told apart from landmarks; no pixel is labelled background',
      training: 'the ST loss averages over each image\'s known pixels only and the CT top-n counts ignore unknown pixels',
    },
    notSeen: 'glasses (eye_g), earrings, and hair over the forehead: the face oval is skin wherever it reaches',
  };
}
