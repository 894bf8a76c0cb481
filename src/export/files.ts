import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { errors } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { quantizeWeights, type Quantization } from './quantize.js';

export const MODEL_JSON = 'model.json';
/** tfjs's own shard size (tfjs-converter's default): small enough for browser caches and CDNs. */
const SHARD_BYTES = 4 * 1024 * 1024;
const SHARD_NAME = /^group1-shard\d+of\d+\.bin$/;

/** A LayersModel's artifacts (topology, weight specs, weight bytes), taken through a save handler instead of a URL scheme. */
export async function modelArtifacts(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      captured = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!captured?.weightSpecs || !captured.weightData) throw errors.internal('model.save gave no weights');
  return captured;
}

/** The artifacts with their weights quantised (or not), weight bytes as one buffer. */
export function quantizedArtifacts(a: tf.io.ModelArtifacts, how: Quantization | undefined): { modelTopology: object; specs: tf.io.WeightsManifestEntry[]; data: Uint8Array } {
  const whole = new tf.io.CompositeArrayBuffer(a.weightData!).slice();
  const { specs, data } = quantizeWeights(a.weightSpecs!, whole, how);
  return { modelTopology: a.modelTopology as object, specs, data };
}

/**
 * Writes model.json and its weight shards into `dir`, each file atomically, shards first, so a
 * reader never sees a model.json whose shards are missing. Shards of an earlier export that this
 * one does not name are removed afterwards.
 */
export function writeModelFiles(
  dir: string,
  a: { modelTopology: object; specs: tf.io.WeightsManifestEntry[]; data: Uint8Array },
  shardBytes = SHARD_BYTES,
): { files: string[]; weightBytes: number } {
  const n = Math.max(1, Math.ceil(a.data.length / shardBytes));
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `group1-shard${i + 1}of${n}.bin`;
    writeFileAtomic(join(dir, name), a.data.subarray(i * shardBytes, Math.min(a.data.length, (i + 1) * shardBytes)));
    paths.push(name);
  }
  const json: tf.io.ModelJSON = {
    modelTopology: a.modelTopology,
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
    convertedBy: 'slfer-dist export',
    weightsManifest: [{ paths, weights: a.specs }],
  };
  writeFileAtomic(join(dir, MODEL_JSON), JSON.stringify(json));
  for (const f of readdirSync(dir)) if (SHARD_NAME.test(f) && !paths.includes(f)) rmSync(join(dir, f), { force: true });
  return { files: [MODEL_JSON, ...paths], weightBytes: a.data.length };
}

/**
 * An IOHandler that loads model.json and its shards from a folder (tfjs's browser build has no
 * file:// handler). Shard paths must be plain names inside the folder.
 */
export function fileModelHandler(dir: string): tf.io.IOHandler {
  return {
    load: async () => {
      const file = join(dir, MODEL_JSON);
      if (!existsSync(file)) throw errors.webModelInvalid(dir, `${MODEL_JSON} is missing`);
      let json: tf.io.ModelJSON;
      try {
        json = JSON.parse(readFileSync(file, 'utf8')) as tf.io.ModelJSON;
      } catch (e) {
        throw errors.webModelInvalid(dir, `${MODEL_JSON} cannot be parsed (${(e as Error).message})`);
      }
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const buffers = manifest.flatMap((g) => g.paths).map((p) => {
          if (basename(p) !== p) throw errors.webModelInvalid(dir, `weight file "${p}" is not a plain file name`);
          const b = readFileSync(join(dir, p));
          return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
        });
        return [tf.io.getWeightSpecs(manifest), tf.io.concatenateArrayBuffers(buffers)];
      });
    },
  };
}

/** Loads artifacts held in memory (quantised or not) as a LayersModel: the same decoding path as from files. */
export function loadFromArtifacts(a: { modelTopology: object; specs: tf.io.WeightsManifestEntry[]; data: Uint8Array }): Promise<tf.LayersModel> {
  const data = a.data.buffer.slice(a.data.byteOffset, a.data.byteOffset + a.data.byteLength) as ArrayBuffer;
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: a.modelTopology, weightSpecs: a.specs, weightData: data, format: 'layers-model' }));
}
