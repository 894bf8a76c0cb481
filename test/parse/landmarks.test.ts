import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARSING_CLASSES, UNKNOWN_CLASS } from '../../src/data/labels.js';
import { isSlferError } from '../../src/errors.js';
import { findHumanPackage } from '../../src/parse/human-package.js';
import { createLandmarksMaker, type LandmarksMaker } from '../../src/parse/landmarks-maker.js';
import { thrown } from '../helpers/thrown.js';

// `parse --method landmarks` on real photographs: the face crops that ship inside
// @vladmandic/human (assets/screenshot-facedetect.jpg, screenshot-faceid.jpg). The optional package
// is installed by npm ci; without it these tests are skipped, saying why.

const missing = (() => {
  try {
    return { reason: null, assets: join(findHumanPackage().modelsDir, '..', 'assets') };
  } catch (e) {
    return { reason: (e as Error).message, assets: '' };
  }
})();

interface Rgb {
  rgb: Uint8Array;
  width: number;
  height: number;
}

async function photo(file: string, crop?: { left: number; top: number; width: number; height: number }, size?: number): Promise<Rgb> {
  let s = sharp(join(missing.assets, file));
  if (crop) s = s.extract(crop);
  if (size) s = s.resize(size, size, { fit: 'fill' });
  const { data, info } = await s.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { rgb: new Uint8Array(data), width: info.width, height: info.height };
}

/** Pixel count and centroid of every class in a mask. */
function summary(mask: Uint8Array, width: number): Map<number, { n: number; x: number; y: number }> {
  const s = new Map<number, { n: number; x: number; y: number }>();
  mask.forEach((v, i) => {
    const e = s.get(v) ?? { n: 0, x: 0, y: 0 };
    e.n++;
    e.x += i % width;
    e.y += Math.floor(i / width);
    s.set(v, e);
  });
  for (const e of s.values()) {
    e.x /= e.n;
    e.y /= e.n;
  }
  return s;
}

const C = Object.fromEntries(PARSING_CLASSES.map((name, i) => [name, i])) as Record<(typeof PARSING_CLASSES)[number], number>;
const LANDMARK_CLASSES = [C.skin, C.l_brow, C.r_brow, C.l_eye, C.r_eye, C.nose, C.mouth, C.u_lip, C.l_lip, UNKNOWN_CLASS];

/** What a mask of an upright face must look like. */
function expectPlausibleFace(mask: Uint8Array | null, img: Rgb, name: string): void {
  expect(mask, `${name}: no face found`).not.toBeNull();
  const m = mask!;
  expect(m.length).toBe(img.width * img.height);
  const s = summary(m, img.width);
  const get = (c: number) => s.get(c) ?? { n: 0, x: NaN, y: NaN };
  expect([...s.keys()].every((v) => LANDMARK_CLASSES.includes(v)), `${name}: classes ${[...s.keys()]}`).toBe(true);
  // Never background: outside the face is unknown.
  expect(s.has(C.background)).toBe(false);
  for (const c of [C.skin, C.l_brow, C.r_brow, C.l_eye, C.r_eye, C.nose, C.u_lip, C.l_lip]) expect(get(c).n, `${name}: ${PARSING_CLASSES[c]}`).toBeGreaterThan(0);
  // Skin is the largest part.
  const parts = [...s.entries()].filter(([v]) => v !== UNKNOWN_CLASS).sort((a, b) => b[1].n - a[1].n);
  expect(parts[0][0], name).toBe(C.skin);
  // Top to bottom: each brow above its eye, the eyes above the nose, above the upper lip, above the lower.
  expect(get(C.l_brow).y).toBeLessThan(get(C.l_eye).y);
  expect(get(C.r_brow).y).toBeLessThan(get(C.r_eye).y);
  expect((get(C.l_eye).y + get(C.r_eye).y) / 2).toBeLessThan(get(C.nose).y);
  expect(get(C.nose).y).toBeLessThan(get(C.u_lip).y);
  expect(get(C.u_lip).y).toBeLessThan(get(C.l_lip).y);
  // The subject's left is on the image's right (an unmirrored photo).
  expect(get(C.l_eye).x, name).toBeGreaterThan(get(C.r_eye).x);
  expect(get(C.l_brow).x, name).toBeGreaterThan(get(C.r_brow).x);
  expect(get(C.nose).x).toBeGreaterThan(get(C.r_eye).x);
  expect(get(C.nose).x).toBeLessThan(get(C.l_eye).x);
  // Outside the face oval is unknown: the corners are, and some of every border.
  const { width: w, height: h } = img;
  for (const i of [0, w - 1, (h - 1) * w, h * w - 1]) expect(m[i], `${name}: corner ${i}`).toBe(UNKNOWN_CLASS);
  expect(get(UNKNOWN_CLASS).n).toBeGreaterThan(0.1 * w * h);
}

// Five faces of screenshot-facedetect.jpg's gallery row, and the face of screenshot-faceid.jpg.
const FACES: [string, { left: number; top: number; width: number; height: number }][] = [
  ...[8, 164, 321, 478, 632].map((left, i): [string, { left: number; top: number; width: number; height: number }] => [
    `screenshot-facedetect.jpg face ${i + 1}`,
    { left, top: 345, width: 150, height: 152 },
  ]),
  ['screenshot-faceid.jpg face', { left: 14, top: 142, width: 140, height: 140 }],
];
const fileOf = (name: string) => name.split(' ')[0];

describe('findHumanPackage', () => {
  it('says how to install the optional package when it is missing', () => {
    const e = thrown(() => findHumanPackage('@vladmandic/not-installed-here'));
    expect(isSlferError(e)).toBe(true);
    expect(e.code).toBe('SLFER_OPTIONAL_PACKAGE_MISSING');
    expect(e.message).toContain('`parse --method landmarks` needs the optional package @vladmandic/not-installed-here');
    expect(e.hint).toContain('npm install --save-exact');
    expect(e.hint).toContain('--method bisenet');
  });
});

describe.skipIf(missing.reason !== null)(`landmarks masks of real photographs${missing.reason ? ` (skipped: ${missing.reason})` : ''}`, () => {
  let maker: LandmarksMaker;
  let mainThread: () => unknown;
  let before: unknown;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    // What this thread's tfjs looks like: the landmarks workers must leave it as it is.
    mainThread = () => ({
      backend: tf.getBackend(),
      backends: Object.keys(tf.engine().registryFactory).sort(),
      kernels: tf.getKernelsForBackend('cpu').map((k) => k.kernelName).sort(),
      prod: tf.env().getBool('PROD'),
      tensors: tf.memory().numTensors,
    });
    before = mainThread();
    maker = await createLandmarksMaker({ threads: 1 });
  });
  afterAll(() => maker?.dispose());

  it('finds each face and labels brows, eyes, nose and lips where they are, the subject\'s left on the image\'s right', async () => {
    for (const [name, crop] of FACES) {
      const img = await photo(fileOf(name), crop);
      expectPlausibleFace(await maker.label(img.rgb, img.width, img.height), img, name);
    }
  });

  it('labels a RAF-DB-sized face (100x100) as well', async () => {
    const img = await photo(FACES[0][0].split(' ')[0], FACES[0][1], 100);
    expectPlausibleFace(await maker.label(img.rgb, img.width, img.height), img, '100x100 face');
  });

  it('labels a whole screenshot at its own size: the parts lie on the face photo within it', async () => {
    const img = await photo('screenshot-faceid.jpg');
    const mask = await maker.label(img.rgb, img.width, img.height);
    expect(mask).not.toBeNull();
    expect(mask!.length).toBe(img.width * img.height);
    const { left, top, width, height } = FACES[5][1];
    let labelled = 0;
    mask!.forEach((v, i) => {
      if (v === UNKNOWN_CLASS) return;
      labelled++;
      const x = i % img.width;
      const y = Math.floor(i / img.width);
      expect(x >= left && x < left + width && y >= top && y < top + height, `pixel (${x}, ${y})`).toBe(true);
    });
    expect(labelled).toBeGreaterThan(0.2 * width * height);
  });

  it('gives null for images without a face', async () => {
    expect(await maker.label(new Uint8Array(100 * 100 * 3).fill(128), 100, 100)).toBeNull();
    const ramp = Uint8Array.from({ length: 160 * 90 * 3 }, (_, i) => Math.floor(i / 3) % 160);
    expect(await maker.label(ramp, 160, 90)).toBeNull();
    expect(await maker.label(new Uint8Array(3).fill(200), 1, 1)).toBeNull();
  });

  it('is deterministic, and leaks no tensor from image to image', async () => {
    const img = await photo(fileOf(FACES[1][0]), FACES[1][1]);
    const first = await maker.label(img.rgb, img.width, img.height);
    const tensors = [...maker.workerTensors.values()];
    for (let i = 0; i < 3; i++) {
      expect(await maker.label(img.rgb, img.width, img.height)).toEqual(first);
      expect(await maker.label(new Uint8Array(64 * 64 * 3), 64, 64)).toBeNull();
      expect([...maker.workerTensors.values()]).toEqual(tensors);
    }
  });

  it('refuses pixels that do not fit the size given, and goes on labelling', async () => {
    const e = await maker.label(new Uint8Array(5), 2, 2).catch((x: unknown) => x);
    expect(isSlferError(e) && e.code).toBe('SLFER_INVALID_ARGUMENT');
    expect(await maker.label(new Uint8Array(0), 0, 0).catch((x: unknown) => isSlferError(x) && x.code)).toBe('SLFER_INVALID_ARGUMENT');
    const img = await photo(fileOf(FACES[0][0]), FACES[0][1]);
    expect(await maker.label(img.rgb, img.width, img.height)).not.toBeNull();
  });

  it('labels the same with two threads, images labelled at once', async () => {
    const imgs = await Promise.all(FACES.slice(0, 4).map(([name, crop]) => photo(fileOf(name), crop)));
    const one = [];
    for (const img of imgs) one.push(await maker.label(img.rgb, img.width, img.height));
    const two = await createLandmarksMaker({ threads: 2 });
    try {
      const both = await Promise.all(imgs.map((img) => two.label(img.rgb, img.width, img.height)));
      expect(both).toEqual(one);
      expect(two.workerTensors.size).toBe(2);
    } finally {
      two.dispose();
    }
  });

  it("says in its description that these are not the paper's masks, and how they are made", () => {
    const d = maker.description as Record<string, unknown> & { models: { sha256: Record<string, string> }; unknown: { value: number } };
    expect(maker.method).toBe('landmarks');
    expect(String(d.protocol)).toMatch(/^not the paper's/);
    expect(d.package).toBe('@vladmandic/human@3.3.6');
    expect(Object.keys(d.models.sha256)).toEqual(['blazeface.json', 'blazeface.bin', 'facemesh.json', 'facemesh.bin', 'iris.json', 'iris.bin']);
    expect(Object.values(d.models.sha256).every((h) => /^[0-9a-f]{64}$/.test(h))).toBe(true);
    expect(d.unknown.value).toBe(255);
    expect(String(d.polygons)).toContain('FACEMESH_FACE_OVAL');
    expect(JSON.parse(JSON.stringify(d))).toEqual(d);
  });

  it('refuses a thread count that is not a positive integer', async () => {
    for (const threads of [0, 1.5, -1]) {
      const e = await createLandmarksMaker({ threads }).catch((x: unknown) => x);
      expect(isSlferError(e) && e.code, `threads ${threads}`).toBe('SLFER_INVALID_ARGUMENT');
    }
  });

  it("leaves this thread's tfjs as it was: backend, registered backends and kernels, production mode, tensors", () => {
    expect(mainThread()).toEqual(before);
  });
});
