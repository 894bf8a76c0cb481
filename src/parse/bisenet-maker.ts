/**
 * Face parsing with BiSeNet, as face-parsing.PyTorch's test.py runs it: the image resized to
 * 512x512, /255, ImageNet mean/std, the main head's argmax. The mask comes back at the image's own
 * size, on whichever engine is fastest here.
 */
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { IMAGENET_MEAN, IMAGENET_STD } from '../data/imagenet.js';
import { selectBackend, type BackendRequest, type Engine } from '../engine/backend.js';
import { errors } from '../errors.js';
import { sha256File } from '../util/sha256-file.js';
import { readBiSeNet } from './bisenet.js';
import type { MaskMaker } from './mask-maker.js';

export const DEFAULT_INPUT_SIZE = 512;

export interface BiSeNetMakerOptions {
  /** face-parsing.PyTorch's 79999_iter.pth, or any torch.save of BiSeNet(19)'s state dict. */
  weights: string;
  /** Side of the square the network sees (test.py: 512). A multiple of 32. */
  inputSize?: number;
  backend?: BackendRequest;
}

export function checkInputSize(size: number): void {
  if (!(Number.isInteger(size) && size >= 64 && size <= 2048 && size % 32 === 0)) {
    throw errors.invalidArgument(
      '--input-size',
      `${size} is not a multiple of 32 between 64 and 2048`,
      `BiSeNet was trained at ${DEFAULT_INPUT_SIZE}px, its default: omit the flag, or pass a multiple of 32 (the network downsamples by 32)`,
    );
  }
}

export async function createBiSeNetMaker(options: BiSeNetMakerOptions): Promise<MaskMaker & { readonly engine: Engine }> {
  const size = options.inputSize ?? DEFAULT_INPUT_SIZE;
  checkInputSize(size);
  const engine = await selectBackend(options.backend ?? 'auto');
  const model = await readBiSeNet(options.weights);
  const weightsSha256 = await sha256File(options.weights);
  const mean = tf.tensor1d(IMAGENET_MEAN.map((m) => m * 255));
  const scale = tf.tensor1d(IMAGENET_STD.map((s) => 1 / (255 * s)));

  return {
    method: 'bisenet',
    engine,
    description: {
      model: 'BiSeNet (face-parsing.PyTorch), 19 CelebAMask-HQ classes',
      weights: resolve(options.weights),
      weightsSha256,
      inputSize: size,
      engine: engine.backend,
      ...(engine.convolutions ? { convolutions: engine.convolutions } : {}),
      preprocessing: `RGB resized to ${size}x${size} (bilinear, pixel centres, rounded to 8 bits, as PIL's Image.resize enlarges in test.py), /255, ImageNet mean and std`,
      maskResize: `nearest neighbour on the ${size}x${size} argmax`,
    },
    async label(rgb: Uint8Array, width: number, height: number): Promise<Uint8Array> {
      if (rgb.length !== width * height * 3) throw errors.internal(`label() got ${rgb.length} bytes for a ${width}x${height} RGB image`);
      const argmax = tf.tidy(() => {
        const image = tf.tensor4d(Float32Array.from(rgb), [1, height, width, 3]);
        // test.py resizes a PIL image, which stays 8-bit: round as PIL does (half up).
        const resized = tf.floor(tf.add(tf.image.resizeBilinear(image, [size, size], false, true), 0.5));
        const x = tf.mul(tf.sub(resized, mean), scale) as tf.Tensor4D;
        return tf.argMax(model.forward(x), 3);
      });
      let ids: Int32Array;
      try {
        ids = (await argmax.data()) as Int32Array;
      } finally {
        argmax.dispose();
      }
      return nearestResize(ids, size, width, height);
    },
    dispose() {
      model.dispose();
      mean.dispose();
      scale.dispose();
    },
  };
}

/**
 * The size×size class map at width×height, each pixel taking the class under its centre.
 *
 * Nearest on the argmax rather than bilinear on the logits: it is what the BiSeNet masks the paper
 * trained on were (test.py's 512 argmax, resized with nearest neighbour to the image), an id stays an
 * id, and only one int per pixel leaves the engine instead of 19 floats. The two differ only along
 * part boundaries, by under a pixel of the image.
 */
export function nearestResize(ids: Int32Array, size: number, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const cols = new Int32Array(width);
  for (let x = 0; x < width; x++) cols[x] = Math.min(size - 1, Math.floor(((x + 0.5) * size) / width));
  for (let y = 0; y < height; y++) {
    const row = Math.min(size - 1, Math.floor(((y + 0.5) * size) / height)) * size;
    for (let x = 0; x < width; x++) out[y * width + x] = ids[row + cols[x]];
  }
  return out;
}
