/**
 * Piscina worker task: decodes one batch of images (and masks) into the tensors the engine takes.
 * Runs in a worker thread, so it only gets plain data and returns plain data plus transferred
 * buffers. A file that cannot be read does not fail the batch: it is left out and listed. A mask
 * that would train the wrong thing (mask-file.ts) fails it: the batch comes back as the error, in
 * the one wire format errors cross boundaries in (errors.ts toWire), and the pipeline throws it.
 */
import { existsSync } from 'node:fs';
import sharp, { type OutputInfo } from 'sharp';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { errors, toWire, type WireError } from '../errors.js';
import { applyCropFlip, type CropFlip } from './augment.js';
import { MaskInvalid, MaskUnreadable, readMaskClasses } from './mask-file.js';
import { aggregateParts, topNComponents } from './masks.js';
import { NUM_PARTS } from './labels.js';
import type { Batch, SkippedFile } from './types.js';

export type Rgb = [number, number, number];

export interface DecodeItem {
  id: string;
  imagePath: string;
  maskPath: string | null;
  label: number;
  crop: CropFlip;
}

export interface DecodeTask {
  items: DecodeItem[];
  /** Side of the square both image and mask are resized to before cropping. */
  resize: number;
  /** Side of the crop the model sees. */
  inputSize: number;
  mean: Rgb;
  std: Rgb;
  withMasks: boolean;
  /** How many parts the CT target marks present. */
  topN: number;
}

// Parallelism already comes from the pool's threads and from a batch's images decoding at once (on
// libuv's threadpool); libvips' threads per image on top would oversubscribe the cores. Its
// operation cache only helps when the same file is read again soon, which an epoch never does.
sharp.concurrency(1);
sharp.cache(false);

type Decoded = { rgb: Uint8Array; parts: Uint8Array | null } | { skipped: SkippedFile } | { error: WireError };

/** What a decoding task sends back: the batch, or why the run must stop. */
export type DecodeResult = Batch | { error: WireError };

export default async function decodeBatch(task: DecodeTask): Promise<ReturnType<typeof move> | { error: WireError }> {
  const { items, inputSize: s, withMasks } = task;
  const decoded = await Promise.all(items.map((item) => decodeItem(item, task)));
  const failed = decoded.find((d) => 'error' in d);
  if (failed) return failed as { error: WireError };
  const kept = items.flatMap((item, i) => {
    const d = decoded[i];
    return 'rgb' in d ? [{ item, ...d }] : [];
  });

  const lut = normalisationTable(task.mean, task.std);
  const pixels = s * s;
  const batch: Batch = {
    size: kept.length,
    inputSize: s,
    images: new Float32Array(kept.length * pixels * 3),
    labels: Int32Array.from(kept, (k) => k.item.label),
    masks: withMasks ? new Uint8Array(kept.length * pixels) : null,
    components: withMasks ? new Float32Array(kept.length * NUM_PARTS) : null,
    ids: kept.map((k) => k.item.id),
    skipped: decoded.flatMap((d) => ('skipped' in d ? [d.skipped] : [])),
    waitMs: 0,
  };
  kept.forEach(({ rgb, parts }, b) => {
    const base = b * pixels * 3;
    for (let i = 0; i < pixels * 3; i++) batch.images[base + i] = lut[(i % 3) * 256 + rgb[i]];
    if (parts !== null) {
      batch.masks!.set(parts, b * pixels);
      batch.components!.set(topNComponents(parts, task.topN), b * NUM_PARTS);
    }
  });
  return movableBatch(batch);
}

/**
 * Wraps a batch so piscina transfers its buffers instead of copying them. Piscina.move on the plain
 * batch would not do it (nested buffers are cloned); a Transferable lists the buffers to transfer
 * ([transferableSymbol], spread into postMessage's transfer list) and the value to send ([valueSymbol]).
 */
export function movableBatch(batch: Batch): ReturnType<typeof move> {
  const buffers = [batch.images, batch.labels, batch.masks, batch.components].flatMap((a) => (a === null ? [] : [a.buffer]));
  return move({
    get [transferableSymbol]() {
      return buffers;
    },
    get [valueSymbol]() {
      return batch;
    },
  });
}

/** (v/255 - mean[c]) / std[c] for every byte value v and channel c, indexed c*256 + v. */
function normalisationTable(mean: Rgb, std: Rgb): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - mean[c]) / std[c];
  return lut;
}

async function decodeItem(item: DecodeItem, task: DecodeTask): Promise<Decoded> {
  const { resize, inputSize } = task;
  let rgb: Uint8Array;
  let size: { width: number; height: number };
  try {
    const input = sharp(item.imagePath);
    // The stored size (header only), for checking the mask's shape against it.
    const meta = task.withMasks ? await input.metadata() : undefined;
    const image = await input.removeAlpha().toColourspace('srgb').resize(resize, resize, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    checkRaw(image, resize, 3);
    rgb = applyCropFlip(image.data, 3, resize, resize, item.crop, inputSize);
    size = { width: meta?.width ?? 0, height: meta?.height ?? 0 };
  } catch (err) {
    return { skipped: { path: item.imagePath, reason: reasonOf(item.imagePath, err) } };
  }
  if (!task.withMasks) return { rgb, parts: null };

  if (item.maskPath === null) return { skipped: { path: item.imagePath, reason: 'no mask' } };
  const path = item.maskPath;
  try {
    const mask = await readMaskClasses(path, size);
    // Nearest neighbour: class indices must not be blended into other (meaningless) indices.
    const resized = await sharp(mask.classes, { raw: { width: mask.width, height: mask.height, channels: 1 } })
      .resize(resize, resize, { fit: 'fill', kernel: 'nearest' })
      .extractChannel(0) // libvips would otherwise write one grey channel out as sRGB
      .raw()
      .toBuffer({ resolveWithObject: true });
    checkRaw(resized, resize, 1);
    return { rgb, parts: aggregateParts(applyCropFlip(resized.data, 1, resize, resize, item.crop, inputSize), path) };
  } catch (err) {
    if (err instanceof MaskInvalid) return { error: toWire(errors.maskInvalid(path, err.message)) };
    return { skipped: { path, reason: err instanceof MaskUnreadable ? err.message : reasonOf(path, err) } };
  }
}

/** Guards against formats that decode to something else than 8-bit pixels of the expected shape. */
function checkRaw(out: { data: Buffer; info: OutputInfo }, side: number, channels: number): void {
  if (out.info.channels !== channels || out.data.length !== side * side * channels) {
    throw new Error(`decoded to ${out.info.width}x${out.info.height}x${out.info.channels} (${out.data.length} bytes), expected 8-bit with ${channels} channel(s)`);
  }
}

function reasonOf(path: string, err: unknown): string {
  if (!existsSync(path)) return 'missing file';
  // libvips repeats its complaint over several lines, and its error buffer is shared by the
  // decoding threads, so the detail after sharp's "Input file has corrupt header:" may be missing
  // or belong to another image: the first line, and the next one only when the first has none.
  const lines = (err instanceof Error ? err.message : String(err)).split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.length === 0) return 'unreadable image';
  return lines[0].endsWith(':') && lines[1] ? `${lines[0]} ${lines[1]}` : lines[0];
}
