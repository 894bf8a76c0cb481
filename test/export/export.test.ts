import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPRESSIONS, PART_CLASSES } from '../../src/data/labels.js';
import { ImagePipeline } from '../../src/data/pipeline.js';
import { readRafDb } from '../../src/data/rafdb.js';
import { selectBackend } from '../../src/engine/backend.js';
import { exportWebModel, SIDECAR, type Sidecar } from '../../src/export/export.js';
import { fileModelHandler } from '../../src/export/files.js';
import { float16Bits } from '../../src/export/quantize.js';
import { predict } from '../../src/train/evaluate.js';
import { loadTrainedModel } from '../../src/train/load-model.js';
import { pipelineOptionsOf } from '../../src/train/model-config.js';
import { train } from '../../src/train/trainer.js';
import { runCli } from '../helpers/cli.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';

const SIDE = 40;
let data: Awaited<ReturnType<typeof syntheticDataset>>;
let run: string;
let images: string[];

beforeAll(async () => {
  data = await syntheticDataset({ train: 24, test: 10, size: SIDE });
  run = (await train({ config: tinyConfig(data.root, SIDE, { epochs: 1 }), out: join(data.base, 'run') })).runDir;
  images = readRafDb(data.root).test.slice(0, 6).map((s) => s.imagePath);
}, 300_000);
afterAll(() => data.cleanup());

/** The test-time input tensor predict feeds the model, for these images (resize, centre crop, normalise). */
async function inputs(files: string[]): Promise<tf.Tensor4D> {
  const { config } = loadTrainedModel(run);
  const pipeline = new ImagePipeline(pipelineOptionsOf(config, { withMasks: false, threads: 1 }));
  try {
    const samples = files.map((p, i) => ({ id: String(i), imagePath: p, maskPath: null, expectedMaskPath: '', label: 0 }));
    for await (const b of pipeline.batches(samples, Int32Array.from(samples.keys()), { batchSize: files.length, train: false, hflip: false, seed: 0, epoch: 0, dropLastBatch: false })) {
      return tf.tensor4d(b.images, [b.size, b.inputSize, b.inputSize, 3]);
    }
    throw new Error('no batch');
  } finally {
    await pipeline.close();
  }
}

function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), 1e-30));
  return worst;
}

describe('slfer-dist export', () => {
  it('the exported LayersModel, loaded back from its files, gives predict\'s probabilities (relative error < 1e-5) and ST\'s part probabilities', async () => {
    const out = join(data.base, 'web');
    const r = await exportWebModel({ checkpoint: run, out, withSegmentation: true, backend: 'wasm' });
    expect(readdirSync(out).sort()).toEqual(['group1-shard1of1.bin', 'model.json', SIDECAR]);
    const expected = await predict({ checkpoint: run, images, backend: 'wasm' });
    const web = await tf.loadLayersModel(fileModelHandler(out));
    const x = await inputs(images);
    const [probs, seg] = web.predict(x) as tf.Tensor[];
    expect(probs.shape).toEqual([images.length, EXPRESSIONS.length]);
    const got = await probs.data();
    const want = expected.flatMap((p) => EXPRESSIONS.map((e) => p.probabilities[e]));
    expect(maxRelativeError(got, want)).toBeLessThan(1e-5);

    // ST against the training code's own forward pass on the same input.
    const { model } = loadTrainedModel(run);
    const ref = tf.tidy(() => tf.softmax(model.forward(x, { training: false }, 'all').segmentation!));
    expect(seg.shape).toEqual([images.length, 32, 32, PART_CLASSES.length]);
    const segErr = maxRelativeError(await seg.data(), await ref.data());
    expect(segErr).toBeLessThan(1e-4);
    tf.dispose([x, probs, seg, ref]);
    model.dispose();
    web.dispose();
    expect(r.sidecar.outputs.map((o) => o.name)).toEqual(['expression', 'segmentation']);
  }, 60_000);

  it('export leaks no tensors', async () => {
    await selectBackend('wasm');
    const before = tf.memory().numTensors;
    await exportWebModel({ checkpoint: run, out: join(data.base, 'web-leak'), withSegmentation: true, backend: 'wasm' });
    expect(tf.memory().numTensors).toBe(before);
  }, 60_000);

  it('the sidecar names the input exactly, the classes in order, and the checkpoint by its SHA-256', async () => {
    const s = JSON.parse(readFileSync(join(data.base, 'web', SIDECAR), 'utf8')) as Sidecar;
    const { path } = loadTrainedModel(run);
    const manifest = JSON.parse(readFileSync(join(path, 'manifest.json'), 'utf8')) as { sha256: string };
    expect(s.input).toMatchObject({ shape: [null, 32, 32, 3], layout: 'NHWC', channels: 'RGB', dtype: 'float32', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    expect(s.input.preprocessing).toMatchObject({ resize: SIDE, cropSize: 32, crop: 'centre', resizeFit: 'fill' });
    expect(s.classNames).toEqual([...EXPRESSIONS]);
    expect(s.partClassNames).toEqual([...PART_CLASSES]);
    expect(s).toMatchObject({ variant: 'proposed', segmentation: true, quantization: 'none' });
    expect(s.checkpoint.tensorsSha256).toBe(manifest.sha256);
    expect(s.checkpoint.manifestSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('--quantize writes tfjs-decodable float16 / uint8 weights (2x / 4x smaller), close to float32; --accuracy prints all three', async () => {
    const dirs = { f32: join(data.base, 'web-f32'), f16: join(data.base, 'web-f16'), u8: join(data.base, 'web-u8') };
    await exportWebModel({ checkpoint: run, out: dirs.f32, backend: 'wasm' });
    const f16 = runCli(['export', '--checkpoint', run, '--out', dirs.f16, '--quantize', 'float16', '--backend', 'wasm', '--accuracy']);
    expect(f16.status, f16.stderr).toBe(0);
    expect(f16.stdout).toMatch(/test accuracy: float32 \d+\.\d\d%, float16 \d+\.\d\d%, uint8 \d+\.\d\d%/);
    const u8 = runCli(['export', '--checkpoint', run, '--out', dirs.u8, '--quantize', 'uint8', '--backend', 'wasm']);
    expect(u8.status, u8.stderr).toBe(0);
    const size = (d: string) => statSync(join(d, 'group1-shard1of1.bin')).size;
    const full = size(dirs.f32);
    expect(size(dirs.f16)).toBe(full / 2);
    expect(size(dirs.u8)).toBe(full / 4);
    const manifest = (d: string) => (JSON.parse(readFileSync(join(d, 'model.json'), 'utf8')) as tf.io.ModelJSON).weightsManifest[0].weights;
    expect(manifest(dirs.f16).every((w) => w.quantization?.dtype === 'float16')).toBe(true);
    expect(manifest(dirs.u8).every((w) => w.quantization?.dtype === 'uint8' && typeof w.quantization.scale === 'number')).toBe(true);
    await selectBackend('wasm');
    const x = await inputs(images);
    const probsOf = async (d: string) => {
      const m = await tf.loadLayersModel(fileModelHandler(d));
      const y = m.predict(x) as tf.Tensor;
      const v = await y.data();
      tf.dispose([y]);
      m.dispose();
      return v;
    };
    const ref = await probsOf(dirs.f32);
    const maxAbs = (a: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - ref[i])));
    expect(maxAbs(await probsOf(dirs.f16))).toBeLessThan(1e-2);
    expect(maxAbs(await probsOf(dirs.u8))).toBeLessThan(0.2);
    x.dispose();
  }, 120_000);

  it('weights split over several shards load back to the same probabilities; a re-export into the folder removes shards it no longer names', async () => {
    const out = join(data.base, 'web-sharded');
    await exportWebModel({ checkpoint: run, out, backend: 'wasm', shardBytes: 20_000 });
    const shards = readdirSync(out).filter((f) => f.endsWith('.bin'));
    expect(shards.length).toBeGreaterThan(3);
    expect(shards).toContain(`group1-shard1of${shards.length}.bin`);
    const x = await inputs(images);
    const sharded = await tf.loadLayersModel(fileModelHandler(out));
    const whole = await tf.loadLayersModel(fileModelHandler(join(data.base, 'web')));
    const a = sharded.predict(x) as tf.Tensor;
    const [b] = whole.predict(x) as tf.Tensor[];
    expect(Array.from(await a.data())).toEqual(Array.from(await b.data()));
    tf.dispose([x, a, b]);
    sharded.dispose();
    whole.dispose();
    await exportWebModel({ checkpoint: run, out, backend: 'wasm' });
    expect(readdirSync(out).filter((f) => f.endsWith('.bin'))).toEqual(['group1-shard1of1.bin']);
  }, 60_000);

  it('--with-segmentation of a variant without ST is SLFER_VARIANT_WITHOUT_ST, and writes nothing', async () => {
    const baseline = (await train({ config: tinyConfig(data.root, SIDE, { epochs: 1, variant: 'baseline' }), out: join(data.base, 'baseline') })).runDir;
    const out = join(data.base, 'web-baseline');
    const r = runCli(['export', '--checkpoint', baseline, '--out', out, '--with-segmentation']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('error SLFER_VARIANT_WITHOUT_ST');
    expect(r.stderr).toContain('--with-segmentation');
    expect(existsSync(out)).toBe(false);
  }, 60_000);

  it('loading a folder without model.json is SLFER_WEB_MODEL_INVALID', async () => {
    const bad = await tf.loadLayersModel(fileModelHandler(data.base)).catch((e: unknown) => e);
    expect((bad as { code?: string }).code).toBe('SLFER_WEB_MODEL_INVALID');
  });
});

describe('float16Bits', () => {
  it('rounds to nearest even, keeps subnormals, overflows to infinity', () => {
    expect([1, -2, 65504, 0.1, 2 ** -24, 2 ** -25, 1e-8, 1e6, 1 + 2 ** -11, 1 + 3 * 2 ** -11].map(float16Bits)).toEqual([0x3c00, 0xc000, 0x7bff, 0x2e66, 1, 0, 0, 0x7c00, 0x3c00, 0x3c02]);
  });
});
