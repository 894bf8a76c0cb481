/**
 * `slfer-dist parse`: the semantic masks SLFER trains on, made from a dataset's own images. For
 * every image of both splits, one 8-bit PNG of class ids at the image's size, where the dataset
 * reader looks for it (Sample.expectedMaskPath), written atomically, so an interrupted run leaves
 * whole masks only and a rerun continues where it stopped. Beside the masks, parse.json says how
 * they were made.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { encode } from 'fast-png';
import sharp from 'sharp';
import { readRafDb } from '../data/rafdb.js';
import { readSfew } from '../data/sfew.js';
import type { DatasetSplits, Sample, SkippedFile } from '../data/types.js';
import type { BackendRequest } from '../engine/backend-names.js';
import { errors } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { requireWeightsFile } from './bisenet.js';
import { checkInputSize, createBiSeNetMaker, DEFAULT_INPUT_SIZE } from './bisenet-maker.js';
import type { MaskMaker } from './mask-maker.js';

export const PARSE_METHODS = ['bisenet', 'landmarks'] as const;
export type ParseMethod = (typeof PARSE_METHODS)[number];
export type ParseDataset = 'rafdb' | 'sfew';

export interface ParseOptions {
  data: string;
  /** Guessed from the folder's layout when absent. */
  dataset?: ParseDataset;
  method?: ParseMethod;
  /** BiSeNet's state dict (bisenet only). */
  weights?: string;
  overwrite?: boolean;
  inputSize?: number;
  backend?: BackendRequest;
  /** Threads for the landmarks method's engine. */
  threads?: number;
  signal?: AbortSignal;
  events?: ParseEvents;
}

export interface ParseEvents {
  log?(line: string): void;
  /** After each image: how many of this run's images are done, of how many, in how long. */
  image?(p: { done: number; total: number; seconds: number; written: number; skipped: number }): void;
}

export interface ParseResult {
  dataset: ParseDataset;
  root: string;
  method: ParseMethod;
  /** parse.json's path; not rewritten when every mask was already there. */
  parseFile: string;
  images: number;
  written: number;
  kept: number;
  skipped: SkippedFile[];
  /** Labelling time, after the model was loaded (loadSeconds). */
  seconds: number;
  loadSeconds: number;
  /** Stopped by the signal before the last image. */
  interrupted: boolean;
}

/** RAF-DB keeps parse.json beside its masks (Mask/aligned/); SFEW, whose masks are in six folders, in its root. */
function parseFileOf(splits: DatasetSplits, dataset: ParseDataset): string {
  return dataset === 'rafdb' ? join(splits.root, 'Mask', 'aligned', 'parse.json') : join(splits.root, 'parse.json');
}

function guessDataset(root: string): ParseDataset {
  if (existsSync(join(root, 'EmoLabel', 'list_patition_label.txt'))) return 'rafdb';
  if (existsSync(join(root, 'Train_Aligned_Faces')) || existsSync(join(root, 'Val_Aligned_Faces'))) return 'sfew';
  throw errors.datasetNotFound(
    root,
    'RAF-DB (EmoLabel/list_patition_label.txt, Image/aligned/) or SFEW 2.0 (Train_Aligned_Faces/, Val_Aligned_Faces/); or name the layout with --dataset',
  );
}

/** The landmarks method lives in its own module, loaded only when asked for, so parse works without it. */
const LANDMARKS_MODULE = './landmarks-maker.js';

/** The landmarks method's maker, or SLFER_PARSE_METHOD_UNAVAILABLE when its module is not there (`specifier`: for tests). */
export async function loadLandmarksMaker(threads: number | undefined, specifier = LANDMARKS_MODULE): Promise<MaskMaker> {
  const unavailable = (reason: string) =>
    errors.parseMethodUnavailable('landmarks', reason, 'use --method bisenet --weights 79999_iter.pth (face-parsing.PyTorch), or update slfer-dist');
  let mod: { createLandmarksMaker?: unknown };
  try {
    mod = (await import(specifier)) as typeof mod;
  } catch (e) {
    const code = (e as { code?: string }).code;
    const moduleName = specifier.replace(/^.*\//, '').replace(/\.js$/, '');
    if ((code === 'ERR_MODULE_NOT_FOUND' || /Cannot find module|Failed to load url/.test(String(e))) && String(e).includes(moduleName)) {
      throw unavailable(`this build of slfer-dist does not include it (src/parse/${moduleName}.ts)`);
    }
    throw e;
  }
  if (typeof mod.createLandmarksMaker !== 'function') throw unavailable('its module exports no createLandmarksMaker');
  return (mod.createLandmarksMaker as (o: { threads?: number }) => Promise<MaskMaker>)({ threads });
}

async function createMaker(method: ParseMethod, o: ParseOptions): Promise<MaskMaker> {
  if (method === 'landmarks') return loadLandmarksMaker(o.threads);
  return createBiSeNetMaker({ weights: o.weights!, inputSize: o.inputSize, backend: o.backend });
}

type Decoded = { rgb: Uint8Array; width: number; height: number } | { skipped: SkippedFile };

/**
 * An image's pixels as 8-bit RGB, as training decodes them (data/decode-task.ts: alpha dropped,
 * sRGB, stored orientation: EXIF orientation is not applied), so a mask lines up with what trains.
 * Never rejects: an unreadable image is a skip.
 */
async function decodeRgb(path: string): Promise<Decoded> {
  try {
    const { data, info } = await sharp(path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`decoded to ${info.width}x${info.height}x${info.channels} (${data.length} bytes), expected 8-bit RGB`);
    }
    return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  } catch (e) {
    const reason = existsSync(path) ? (e instanceof Error ? e.message : String(e)).split('\n')[0] : 'missing file';
    return { skipped: { path, reason } };
  }
}

function checkIds(ids: Uint8Array, width: number, height: number, method: string): void {
  if (ids.length !== width * height) throw errors.internal(`parse method ${method} returned ${ids.length} class ids for a ${width}x${height} image`);
}

/** writeFileAtomic, with a file system's refusal (read-only dataset, disk full) told in the user's terms. */
function writeOrExplain(path: string, data: string | Uint8Array): void {
  try {
    writeFileAtomic(path, data);
  } catch (e) {
    throw errors.invalidArgument(
      `cannot write ${path}`,
      (e as Error).message,
      'parse writes the masks inside the dataset folder: make it writable (or copy the dataset somewhere writable) and free some disk space; masks already written are kept, so rerunning continues',
    );
  }
}

/** The previous parse.json, if readable: its masks are the ones kept. */
function previousRun(file: string): { method?: string; description?: { weightsSha256?: string }; finishedAt?: string } | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ReturnType<typeof previousRun>;
  } catch {
    return null;
  }
}

export async function parse(o: ParseOptions): Promise<ParseResult> {
  const method = o.method ?? 'bisenet';
  if (!PARSE_METHODS.includes(method)) throw errors.invalidArgument('--method', `"${method}" is not a parse method`, `use one of ${PARSE_METHODS.join(', ')}`);
  const root = resolve(o.data);
  if (!existsSync(root)) throw errors.datasetNotFound(root, 'a RAF-DB or SFEW 2.0 dataset (see "Data layouts" in the README)');
  const dataset = o.dataset ?? guessDataset(root);
  if (method === 'bisenet') checkInputSize(o.inputSize ?? DEFAULT_INPUT_SIZE);
  const log = o.events?.log ?? (() => {});
  const splits = dataset === 'rafdb' ? readRafDb(root) : readSfew(root);
  const samples: Sample[] = [...splits.train, ...splits.test];
  const parseFile = parseFileOf(splits, dataset);
  const todo = o.overwrite ? samples : samples.filter((s) => !existsSync(s.expectedMaskPath));
  const kept = samples.length - todo.length;
  const result: ParseResult = { dataset, root, method, parseFile, images: samples.length, written: 0, kept, skipped: [], seconds: 0, loadSeconds: 0, interrupted: false };

  if (todo.length === 0) {
    log(`all ${samples.length} masks are already there (--overwrite makes them again)`);
    return result;
  }
  // Weights are needed only when there is a mask to make (a rerun that only previews needs none).
  if (method === 'bisenet') {
    if (!o.weights) {
      throw errors.invalidArgument('--weights', 'BiSeNet needs its weights', "pass --weights 79999_iter.pth (face-parsing.PyTorch's, linked from its README), or use --method landmarks");
    }
    requireWeightsFile(o.weights);
  }
  const previous = kept > 0 ? previousRun(parseFile) : null;
  if (previous && previous.method !== undefined && previous.method !== method) {
    log(`warning: keeping ${kept} masks that parse.json says were made with --method ${previous.method}; --overwrite remakes them all with ${method}`);
  }
  const startedAt = new Date().toISOString();
  const loadStart = Date.now();
  const maker = await createMaker(method, o);
  // Labelling time, from here: loading the model (weights, engine start) is reported apart.
  const t0 = Date.now();
  const loadSeconds = (result.loadSeconds = (t0 - loadStart) / 1000);
  try {
    const d = maker.description;
    const engine = d.engine ? ` on ${d.engine}${d.convolutions ? ` (convolutions: ${d.convolutions})` : ''}` : '';
    log(`parse: ${todo.length} of ${samples.length} ${splits.name} images with ${method}${engine}; ${kept} masks already there are kept`);
    const before = previous?.method === method ? previous.description?.weightsSha256 : undefined;
    if (before && d.weightsSha256 && before !== d.weightsSha256) {
      log(`warning: the ${kept} masks kept were made with other weights (SHA-256 ${before.slice(0, 12)}…, these are ${String(d.weightsSha256).slice(0, 12)}…); --overwrite remakes them all with these`);
    }
    // A method that labels several images at once (landmarks, on worker threads) says how many in
    // description.threads; BiSeNet runs one at a time on the engine. Decoding runs ahead on libuv's
    // threads, so it overlaps labelling.
    const lanes = typeof d.threads === 'number' && d.threads > 1 ? d.threads : 1;
    const decodes = new Map<number, Promise<Decoded>>();
    const decodeAt = (i: number) => i < todo.length && !decodes.has(i) && decodes.set(i, decodeRgb(todo[i].imagePath));
    let next = 0;
    let done = 0;
    let failed = false;
    const lane = async () => {
      for (;;) {
        if (o.signal?.aborted || failed) return;
        const i = next++;
        if (i >= todo.length) return;
        decodeAt(i);
        decodeAt(i + lanes);
        const image = await decodes.get(i)!;
        decodes.delete(i);
        if ('skipped' in image) result.skipped.push(image.skipped);
        else {
          const ids = await maker.label(image.rgb, image.width, image.height);
          if (ids === null) result.skipped.push({ path: todo[i].imagePath, reason: 'no face found' });
          else {
            checkIds(ids, image.width, image.height, method);
            writeOrExplain(todo[i].expectedMaskPath, encode({ width: image.width, height: image.height, data: ids, depth: 8, channels: 1 }));
            result.written++;
          }
        }
        done++;
        o.events?.image?.({ done, total: todo.length, seconds: (Date.now() - t0) / 1000, written: result.written, skipped: result.skipped.length });
      }
    };
    const settled = await Promise.allSettled(Array.from({ length: lanes }, () => lane().catch((e) => ((failed = true), Promise.reject(e)))));
    const failure = settled.find((s) => s.status === 'rejected');
    if (failure) throw (failure as PromiseRejectedResult).reason;
    result.interrupted = done < todo.length;
    result.skipped.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0)); // lanes finish in any order
    result.seconds = (Date.now() - t0) / 1000;
    writeOrExplain(
      parseFile,
      JSON.stringify(
        {
          method,
          description: maker.description,
          dataset,
          root,
          startedAt,
          finishedAt: new Date().toISOString(),
          loadSeconds: Number(loadSeconds.toFixed(3)),
          seconds: Number(result.seconds.toFixed(3)),
          imagesPerSecond: Number(((result.written + result.skipped.length) / Math.max(result.seconds, 1e-9)).toFixed(3)),
          complete: !result.interrupted,
          counts: { images: samples.length, written: result.written, kept, skipped: result.skipped.length },
          skipped: result.skipped,
          ...(previous && kept > 0 ? { keptFrom: { method: previous.method, weightsSha256: previous.description?.weightsSha256, finishedAt: previous.finishedAt } } : {}),
        },
        null,
        2,
      ) + '\n',
    );
  } finally {
    maker.dispose();
  }
  return result;
}
