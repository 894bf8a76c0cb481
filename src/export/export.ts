import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Config } from '../config.js';
import { PART_COLOURS } from '../data/label-colours.js';
import { EXPRESSIONS, PART_CLASSES } from '../data/labels.js';
import { ImagePipeline } from '../data/pipeline.js';
import { selectBackend, type BackendRequest } from '../engine/backend.js';
import { errors } from '../errors.js';
import { variantParts, VARIANTS, type Variant } from '../model/config.js';
import { loadTrainedModel } from '../train/load-model.js';
import { ConfusionMatrix } from '../train/metrics.js';
import { pipelineOptionsOf } from '../train/model-config.js';
import { prepareData } from '../train/trainer.js';
import { writeFileAtomic } from '../util/atomic.js';
import { sha256File } from '../util/sha256-file.js';
import { loadFromArtifacts, MODEL_JSON, modelArtifacts, quantizedArtifacts, writeModelFiles } from './files.js';
import type { Quantization } from './quantize.js';
import { buildWebModel } from './web-model.js';

export const SIDECAR = 'slfer-model.json';
export const SIDECAR_FORMAT = 'slfer-dist-web-model';

/** What slfer-model.json says: everything a caller needs to feed the model and read its outputs. */
export interface Sidecar {
  format: typeof SIDECAR_FORMAT;
  version: 1;
  /** The tfjs model beside it, for tf.loadLayersModel. */
  model: typeof MODEL_JSON;
  variant: Variant;
  width: number;
  input: {
    name: 'image';
    /** [batch, inputSize, inputSize, 3] float32, NHWC, channels RGB. */
    shape: [null, number, number, 3];
    layout: 'NHWC';
    channels: 'RGB';
    dtype: 'float32';
    /** The test-time preprocessing the model was trained with, done by the caller (not inside the model). */
    preprocessing: { resize: number; resizeFit: 'fill'; crop: 'centre'; cropSize: number; normalise: string };
    mean: [number, number, number];
    std: [number, number, number];
  };
  outputs: { name: string; shape: (number | null)[]; values: string; classes: string[] }[];
  classNames: string[];
  segmentation: boolean;
  partClassNames?: string[];
  /** RGB per part, the colours eval --masks draws them in. */
  partColours?: [number, number, number][];
  quantization: Quantization | 'none';
  weightBytes: number;
  checkpoint: { path: string; epoch: number; tensorsSha256: string; manifestSha256: string };
  /** Present when export measured it (--accuracy): test-split accuracy of the exported model at each precision. */
  testAccuracy?: Partial<Record<Quantization | 'float32', number>>;
  exportedBy: string;
}

export interface ExportOptions {
  checkpoint: string;
  out: string;
  withSegmentation?: boolean;
  quantize?: Quantization;
  /** Also evaluate the exported model on the checkpoint's test split at float32, float16 and uint8. */
  accuracy?: boolean;
  backend?: BackendRequest;
  /** Weight shard size (default tfjs's 4 MiB). */
  shardBytes?: number;
  log?: (line: string) => void;
}

export interface ExportResult {
  dir: string;
  sidecar: Sidecar;
  files: string[];
}

/** `slfer-dist export`: a checkpoint's inference network as a TensorFlow.js LayersModel folder plus slfer-model.json. */
export async function exportWebModel(o: ExportOptions): Promise<ExportResult> {
  const log = o.log ?? (() => {});
  await selectBackend(o.backend ?? 'auto');
  const { model, config, path, epoch } = loadTrainedModel(o.checkpoint);
  let artifacts: tf.io.ModelArtifacts;
  try {
    if (o.withSegmentation && !model.parts.st) throw errors.variantWithoutSt(path, config.model.variant, '--with-segmentation', VARIANTS.filter((v) => variantParts(v).st));
    const web = buildWebModel(model, { withSegmentation: !!o.withSegmentation });
    try {
      artifacts = await modelArtifacts(web);
    } finally {
      web.dispose();
    }
  } finally {
    model.dispose();
  }
  const dir = resolve(o.out);
  const chosen = quantizedArtifacts(artifacts, o.quantize);
  const testAccuracy = o.accuracy ? await measureAccuracy(config, artifacts, log) : undefined;
  const { files, weightBytes } = writeModelFiles(dir, chosen, o.shardBytes);
  const manifestFile = join(path, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { sha256: string };
  const S = config.model.inputSize;
  const seg = !!o.withSegmentation;
  const sidecar: Sidecar = {
    format: SIDECAR_FORMAT,
    version: 1,
    model: MODEL_JSON,
    variant: config.model.variant,
    width: config.model.width,
    input: {
      name: 'image',
      shape: [null, S, S, 3],
      layout: 'NHWC',
      channels: 'RGB',
      dtype: 'float32',
      preprocessing: {
        resize: config.data.resize,
        resizeFit: 'fill',
        crop: 'centre',
        cropSize: S,
        normalise: 'value = (byte / 255 - mean[c]) / std[c], for 8-bit sRGB byte values of channel c (R, G, B)',
      },
      mean: [...config.data.mean],
      std: [...config.data.std],
    },
    outputs: [
      { name: 'expression', shape: [null, EXPRESSIONS.length], values: 'softmax probabilities, in classNames order', classes: [...EXPRESSIONS] },
      ...(seg ? [{ name: 'segmentation', shape: [null, S, S, PART_CLASSES.length], values: 'per-pixel softmax part probabilities over the input crop, in partClassNames order', classes: [...PART_CLASSES] }] : []),
    ],
    classNames: [...EXPRESSIONS],
    segmentation: seg,
    ...(seg ? { partClassNames: [...PART_CLASSES], partColours: PART_COLOURS.map((c) => [c[0], c[1], c[2]] as [number, number, number]) } : {}),
    quantization: o.quantize ?? 'none',
    weightBytes,
    checkpoint: { path, epoch, tensorsSha256: manifest.sha256, manifestSha256: await sha256File(manifestFile) },
    ...(testAccuracy ? { testAccuracy } : {}),
    exportedBy: 'slfer-dist export',
  };
  // Last: its presence says the folder is complete.
  writeFileAtomic(join(dir, SIDECAR), JSON.stringify(sidecar, null, 1) + '\n');
  return { dir, sidecar, files: [...files, SIDECAR] };
}

/** Test-split accuracy of the exported network at each weight precision, through tfjs's own loader (so quantised weights are decoded as a browser would). */
async function measureAccuracy(config: Config, artifacts: tf.io.ModelArtifacts, log: (l: string) => void): Promise<Record<Quantization | 'float32', number>> {
  const { splits } = await prepareData({ ...config, model: { ...config.model, variant: 'baseline' } }, log);
  const pipeline = new ImagePipeline(pipelineOptionsOf(config, { withMasks: false }));
  const out = {} as Record<Quantization | 'float32', number>;
  try {
    for (const how of [undefined, 'float16', 'uint8'] as const) {
      const web = await loadFromArtifacts(quantizedArtifacts(artifacts, how));
      try {
        const cm = new ConfusionMatrix();
        const order = Int32Array.from(splits.test.keys());
        for await (const batch of pipeline.batches(splits.test, order, { batchSize: config.train.batchSize, train: false, hflip: false, seed: 0, epoch: 0, dropLastBatch: false })) {
          if (batch.size === 0) continue;
          const predicted = tf.tidy(() => {
            const y = web.predict(tf.tensor4d(batch.images, [batch.size, batch.inputSize, batch.inputSize, 3]));
            return tf.argMax(Array.isArray(y) ? y[0] : y, 1);
          });
          cm.add(batch.labels, await predicted.data());
          predicted.dispose();
        }
        out[how ?? 'float32'] = cm.result().accuracy;
      } finally {
        web.dispose();
      }
    }
  } finally {
    await pipeline.close();
  }
  return out;
}
