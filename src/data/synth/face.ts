/**
 * Procedural cartoon faces with an expression and a face-parsing mask.
 *
 * sampleFace draws every random choice (identity, expression, nuisances) into a plain FaceParams
 * record; drawFace is a pure function of that record, so a sample is reproducible from its Rng
 * stream alone. Geometry lives in "face units": fractions of the image size, origin at the centre
 * of the face oval, x right, y down. A similarity transform (position, scale, in-plane rotation)
 * maps face units to pixels, so the image and the mask move together.
 *
 * Expressions are built from Action-Unit-like deltas (brow raise / lower / inner raise, lid
 * opening, lip-corner pull, jaw drop, lip raise, nose wrinkle) scaled by a per-sample intensity, on
 * top of an identity that varies too, so that classes overlap a little at low intensity.
 *
 * Paired parts are drawn with l_* on the image's left (face-frame x < 0) and r_* on its right.
 */
import { errors } from '../../errors.js';
import { Rng } from '../../util/rng.js';
import { EXPRESSIONS, PARSING_CLASSES, type Expression } from '../labels.js';
import {
  Canvas,
  ellipse,
  intersect,
  polygon,
  quadBezier,
  ring,
  stroke,
  union,
  type Paint,
  type Point,
  type RGB,
  type Shape,
} from './raster.js';

/** Parsing class ids by name. */
const C = Object.fromEntries(PARSING_CLASSES.map((name, i) => [name, i])) as Record<(typeof PARSING_CLASSES)[number], number>;

export type HairStyle = 'bald' | 'short' | 'bangs' | 'sidepart' | 'long' | 'curly';
export type Teeth = 'none' | 'upper' | 'lower' | 'both';

export type Background =
  | { kind: 'flat'; color: RGB }
  | { kind: 'gradient'; from: RGB; to: RGB; angle: number }
  /** A coarse grid of colours, bilinearly blended: blotchy, out-of-focus clutter. */
  | { kind: 'blotchy'; grid: RGB[]; n: number };

export interface FaceParams {
  /** Expression index in EXPRESSIONS order, and how strongly it shows (0 for Neutral). */
  expression: number;
  intensity: number;
  /** Face centre (fraction of the image), scale factor and in-plane rotation (radians). */
  cx: number;
  cy: number;
  scale: number;
  angle: number;

  skin: RGB;
  hair: RGB;
  hairStyle: HairStyle;
  /** Side the parting sweeps towards (-1 image left, +1 right). */
  hairSide: number;
  browColor: RGB;
  lipColor: RGB;
  iris: RGB;
  cloth: RGB;
  background: Background;

  /** Face oval: half width, upper and lower half heights, chin narrowing 0..1. */
  face: { rx: number; ryTop: number; ryBottom: number; jaw: number };
  /** Eye centres at (±x, y); lid heights above and below the corner line; outer-corner tilt. */
  eyes: { x: number; y: number; halfWidth: number; upper: number; lower: number; tilt: number; irisR: number; gazeX: number; gazeY: number };
  /** Brows from the inner end at x = ±innerX, `length` outwards; y of each end and mid-arch (up is -y). */
  brows: { innerX: number; length: number; innerY: number; outerY: number; arch: number; thickness: number };
  nose: { length: number; width: number; flare: number; wrinkle: number };
  /**
   * Mouth centre y, half width, corner lift (+ up), lip gap at the centre, opening profile
   * (superellipse exponent: 2 round, 4 boxy, <2 pointed), asymmetric upper-lip raise, lip thickness.
   */
  mouth: {
    y: number;
    halfWidth: number;
    corner: number;
    open: number;
    profile: number;
    upperRaise: number;
    raiseSide: number;
    upperLip: number;
    lowerLip: number;
    teeth: Teeth;
  };
  /** Nasolabial fold strength 0..1 (smiles, sneers). */
  folds: number;

  glasses: { color: RGB; rx: number; ry: number; tint: RGB; tintOpacity: number } | null;
  hat: { color: RGB; band: RGB; y: number; brim: boolean } | null;
  earrings: { color: RGB; hoop: boolean } | null;
  necklace: { color: RGB; drop: number } | null;
  /** Something between camera and face; the parser sees it as background. */
  occluder: { kind: 'hand' | 'rect'; color: RGB; x: number; y: number; size: number; angle: number } | null;

  /** Brightness gradient: gain runs from 1 - strength to 1 + strength across the image along `angle`. */
  lighting: { strength: number; angle: number };
  noise: { sigma: number; seed: number };
}

// ---------------------------------------------------------------- colours

const clamp255 = (v: number) => Math.max(0, Math.min(255, v));
const mix = (a: RGB, b: RGB, t: number): RGB => [
  clamp255(a[0] + (b[0] - a[0]) * t),
  clamp255(a[1] + (b[1] - a[1]) * t),
  clamp255(a[2] + (b[2] - a[2]) * t),
];
const shade = (c: RGB, f: number): RGB => [clamp255(c[0] * f), clamp255(c[1] * f), clamp255(c[2] * f)];
const luma = (c: RGB) => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)];
const randomColor = (rng: Rng): RGB => [rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)];
const jitter = (rng: Rng, c: RGB, amount: number): RGB => [
  clamp255(c[0] + rng.uniform(-amount, amount)),
  clamp255(c[1] + rng.uniform(-amount, amount)),
  clamp255(c[2] + rng.uniform(-amount, amount)),
];

const SKIN_RAMP: RGB[] = [[252, 226, 206], [226, 184, 150], [190, 140, 100], [140, 95, 65], [88, 58, 42]];
const HAIR: RGB[] = [[24, 20, 20], [55, 38, 28], [100, 68, 42], [205, 172, 112], [150, 66, 36], [165, 165, 162], [40, 30, 26]];
const IRIS: RGB[] = [[70, 45, 25], [40, 28, 20], [70, 110, 160], [80, 120, 70], [120, 95, 50]];
const LIPSTICK: RGB[] = [[180, 30, 50], [200, 90, 120], [110, 30, 40], [205, 70, 70]];

function sampleSkin(rng: Rng): RGB {
  const t = rng.next() * (SKIN_RAMP.length - 1);
  const i = Math.min(Math.floor(t), SKIN_RAMP.length - 2);
  return jitter(rng, mix(SKIN_RAMP[i], SKIN_RAMP[i + 1], t - i), 8);
}

// ---------------------------------------------------------------- expressions

/** Deltas from the identity's neutral face, at the sampled intensity (face units). */
interface ActionUnits {
  browLift: number; // both brow ends up
  browInner: number; // inner ends up (+) or down (-)
  browArch: number; // middle of the brow up
  browTogether: number; // inner ends towards the midline
  eyeUpper: number; // upper lid up (wider eye)
  eyeLower: number; // lower lid down (wider eye); negative = cheek raise
  mouthWidth: number;
  mouthCorner: number; // corners up (+) or down (-)
  mouthOpen: number;
  mouthProfile: number;
  upperRaise: number;
  lipScale: number; // lip thickness factor (pressed or stretched lips are thinner)
  jawDrop: number;
  noseWrinkle: number;
  folds: number;
  teeth: Teeth;
}

const NO_ACTION: ActionUnits = {
  browLift: 0, browInner: 0, browArch: 0, browTogether: 0, eyeUpper: 0, eyeLower: 0, mouthWidth: 0,
  mouthCorner: 0, mouthOpen: 0, mouthProfile: 1.6, upperRaise: 0, lipScale: 1, jawDrop: 0,
  noseWrinkle: 0, folds: 0, teeth: 'none',
};

function actionUnits(rng: Rng, expression: Expression, k: number): ActionUnits {
  const au = NO_ACTION;
  switch (expression) {
    case 'Surprise': // brows high and arched, eyes wide, round open mouth, jaw dropped
      return {
        ...au,
        browLift: 0.05 * k, browArch: 0.02 * k,
        eyeUpper: 0.022 * k, eyeLower: 0.008 * k,
        mouthWidth: -0.03 * k, mouthOpen: 0.04 + 0.05 * k, mouthProfile: 2, lipScale: 0.75, jawDrop: 0.035 * k,
        teeth: rng.next() < 0.3 ? 'upper' : 'none',
      };
    case 'Fear': // brows raised and drawn together (inner ends up), eyes wide, wide low open mouth
      return {
        ...au,
        browLift: 0.03 * k, browInner: 0.025 * k, browTogether: 0.014 * k, browArch: -0.006 * k,
        eyeUpper: 0.02 * k, eyeLower: 0.005 * k,
        mouthWidth: 0.025 * k, mouthCorner: -0.012 * k, mouthOpen: 0.014 + 0.022 * k, mouthProfile: 4, lipScale: 0.7,
        jawDrop: 0.01 * k,
        teeth: pick(rng, ['none', 'lower', 'both'] as const),
      };
    case 'Disgust': // brows lowered, eyes narrowed, upper lip raised on one side, nose wrinkled
      return {
        ...au,
        browLift: -0.02 * k, browInner: -0.012 * k, browTogether: 0.006 * k,
        eyeUpper: -0.01 * k, eyeLower: -0.007 * k,
        mouthWidth: -0.005 * k, mouthCorner: -0.014 * k, mouthOpen: 0.005 * k, upperRaise: 0.022 * k, mouthProfile: 1.4,
        noseWrinkle: k, folds: k, teeth: 'upper',
      };
    case 'Happiness': { // corners up, wider mouth, often open with teeth, cheeks raise the lower lids
      const open = rng.next() < 0.6;
      return {
        ...au,
        browLift: 0.004 * k,
        eyeUpper: -0.006 * k, eyeLower: -0.01 * k,
        mouthWidth: 0.025 * k, mouthCorner: 0.035 * k, mouthOpen: open ? 0.016 + 0.026 * k : 0, mouthProfile: 1.5,
        folds: 0.7 * k, teeth: open ? 'upper' : 'none',
      };
    }
    case 'Sadness': // inner brow corners up, corners of the mouth down, lids lowered
      return {
        ...au,
        browInner: 0.035 * k, browLift: -0.006 * k, browArch: -0.006 * k,
        eyeUpper: -0.01 * k,
        mouthWidth: -0.008 * k, mouthCorner: -0.028 * k, lipScale: 1.1,
      };
    case 'Anger': { // brows lowered into a V, eyes narrowed, lips pressed thin or teeth bared
      const face = {
        ...au,
        browLift: -0.025 * k, browInner: -0.035 * k, browTogether: 0.016 * k,
        eyeUpper: -0.011 * k, eyeLower: -0.004 * k, folds: 0.3 * k,
      };
      return rng.next() < 0.4
        ? { ...face, mouthWidth: 0.012 * k, mouthCorner: -0.01 * k, mouthOpen: 0.014 + 0.018 * k, mouthProfile: 4, lipScale: 0.7, teeth: 'both' }
        : { ...face, mouthWidth: -0.018 * k, mouthCorner: -0.008 * k, lipScale: 0.45 };
    }
    case 'Neutral':
      return au;
  }
}

// ---------------------------------------------------------------- sampling

export function sampleFace(rng: Rng, expression: number): FaceParams {
  const name = EXPRESSIONS[expression];
  if (name === undefined) {
    throw errors.invalidArgument('expression', `must be an index 0..${EXPRESSIONS.length - 1}, got ${expression}`, 'pass an index into EXPRESSIONS');
  }
  const k = name === 'Neutral' ? 0 : rng.uniform(0.5, 1);
  const au = actionUnits(rng, name, k);
  const u = (lo: number, hi: number) => rng.uniform(lo, hi);
  const chance = (p: number) => rng.next() < p;

  const skin = sampleSkin(rng);
  const hair = chance(0.05) ? randomColor(rng) : jitter(rng, pick(rng, HAIR), 10);
  // Brows stay darker than the skin whatever the hair colour, as they do on real faces.
  let browColor = mix(shade(hair, 0.75), [35, 25, 20], 0.45);
  if (luma(browColor) > 0.6 * luma(skin)) browColor = shade(browColor, (0.6 * luma(skin)) / luma(browColor));
  const lipColor = chance(0.15) ? jitter(rng, pick(rng, LIPSTICK), 12) : shade(mix(skin, [185, 75, 85], 0.45), 0.9);

  const background: Background = pick(rng, [
    (): Background => ({ kind: 'flat', color: randomColor(rng) }),
    (): Background => ({ kind: 'gradient', from: randomColor(rng), to: randomColor(rng), angle: u(0, 2 * Math.PI) }),
    (): Background => {
      const n = 3 + rng.int(4);
      return { kind: 'blotchy', n, grid: Array.from({ length: n * n }, () => randomColor(rng)) };
    },
  ])();

  const rx = u(0.25, 0.29);
  const eyeHalf = u(0.048, 0.056);
  const eyeY = u(-0.035, -0.01);
  const browBase = eyeY - u(0.06, 0.072);
  // Small per-face quirks on the expression-bearing features blur the class borders at low intensity.
  const browTilt = u(-0.006, 0.006);
  const mouthHalf = Math.max(0.035, u(0.072, 0.088) + au.mouthWidth);

  return {
    expression,
    intensity: k,
    // Framed like RAF-DB's aligned crops: the face fills most of the width, the chin near the bottom.
    cx: 0.5 + u(-0.08, 0.08),
    cy: 0.45 + u(-0.08, 0.08),
    scale: 1.1 * u(0.88, 1.12),
    angle: (u(-12, 12) * Math.PI) / 180,
    skin,
    hair,
    hairStyle: pick(rng, ['short', 'short', 'short', 'bangs', 'bangs', 'sidepart', 'sidepart', 'long', 'long', 'long', 'curly', 'bald'] as const),
    hairSide: chance(0.5) ? 1 : -1,
    browColor,
    lipColor,
    iris: jitter(rng, pick(rng, IRIS), 10),
    cloth: randomColor(rng),
    background,
    face: { rx, ryTop: u(0.31, 0.35), ryBottom: u(0.32, 0.36) + au.jawDrop, jaw: u(0.05, 0.2) },
    eyes: {
      x: u(0.1, 0.112),
      y: eyeY,
      halfWidth: eyeHalf,
      upper: Math.max(0.006, u(0.019, 0.029) + au.eyeUpper),
      lower: Math.max(0.003, u(0.013, 0.018) + au.eyeLower),
      tilt: u(-0.004, 0.01),
      irisR: u(0.019, 0.023),
      gazeX: u(-0.01, 0.01),
      gazeY: u(-0.003, 0.003),
    },
    brows: {
      innerX: u(0.04, 0.052) - au.browTogether,
      length: u(0.105, 0.125),
      innerY: browBase - au.browLift - au.browInner + browTilt,
      outerY: browBase - au.browLift - browTilt,
      arch: Math.max(0, u(0.006, 0.016) + au.browArch),
      thickness: u(0.026, 0.036),
    },
    nose: { length: u(0.085, 0.105), width: u(0.032, 0.042), flare: 1 + 0.35 * au.noseWrinkle, wrinkle: au.noseWrinkle },
    mouth: {
      y: u(0.18, 0.2) + au.jawDrop * 0.4,
      halfWidth: mouthHalf,
      corner: au.mouthCorner + u(-0.005, 0.005),
      open: au.mouthOpen,
      profile: au.mouthProfile,
      upperRaise: au.upperRaise,
      raiseSide: chance(0.5) ? 1 : -1,
      upperLip: u(0.015, 0.022) * au.lipScale,
      lowerLip: u(0.019, 0.027) * au.lipScale,
      teeth: au.teeth,
    },
    folds: au.folds,
    glasses: chance(0.15)
      ? { color: chance(0.6) ? jitter(rng, [30, 30, 30], 20) : randomColor(rng), rx: u(0.07, 0.08), ry: u(0.048, 0.06), tint: randomColor(rng), tintOpacity: u(0, 0.3) }
      : null,
    hat: chance(0.1) ? { color: randomColor(rng), band: randomColor(rng), y: u(-0.28, -0.22), brim: chance(0.5) } : null,
    earrings: chance(0.15) ? { color: chance(0.5) ? [230, 195, 80] : randomColor(rng), hoop: chance(0.5) } : null,
    necklace: chance(0.1) ? { color: chance(0.5) ? [220, 220, 225] : randomColor(rng), drop: u(0.02, 0.06) } : null,
    occluder: chance(0.15)
      ? {
          kind: chance(0.6) ? 'hand' : 'rect',
          color: chance(0.5) ? sampleSkin(rng) : randomColor(rng),
          // Aimed at the lower face, a cheek or an eye, never the whole face.
          ...pick(rng, [
            { x: u(-0.1, 0.1), y: u(0.22, 0.34) },
            { x: u(0.16, 0.26) * (chance(0.5) ? 1 : -1), y: u(0.05, 0.2) },
            { x: u(0.08, 0.14) * (chance(0.5) ? 1 : -1), y: u(-0.05, 0.02) },
          ]),
          size: u(0.7, 1.1),
          angle: u(-0.6, 0.6),
        }
      : null,
    lighting: { strength: u(0, 0.25), angle: u(0, 2 * Math.PI) },
    noise: { sigma: u(2, 8), seed: rng.nextU32() },
  };
}

// ---------------------------------------------------------------- drawing

/** Face units -> pixels (similarity transform), and back for per-pixel shading. */
class Frame {
  private readonly s: number;
  private readonly c: number;
  private readonly sn: number;
  private readonly ox: number;
  private readonly oy: number;
  private readonly angle: number;

  constructor(p: FaceParams, size: number) {
    this.s = p.scale * size;
    this.c = Math.cos(p.angle);
    this.sn = Math.sin(p.angle);
    this.ox = p.cx * size;
    this.oy = p.cy * size;
    this.angle = p.angle;
  }

  pt = (x: number, y: number): Point => [
    this.ox + this.s * (x * this.c - y * this.sn),
    this.oy + this.s * (x * this.sn + y * this.c),
  ];

  /** Face-unit coordinates of pixel position (px, py); two calls so per-pixel paints allocate nothing. */
  faceX(px: number, py: number): number {
    return ((px - this.ox) * this.c + (py - this.oy) * this.sn) / this.s;
  }

  faceY(px: number, py: number): number {
    return ((py - this.oy) * this.c - (px - this.ox) * this.sn) / this.s;
  }

  ellipse(x: number, y: number, rx: number, ry: number, rot = 0): Shape {
    const [px, py] = this.pt(x, y);
    return ellipse(px, py, rx * this.s, ry * this.s, rot + this.angle);
  }

  polygon(points: readonly Point[]): Shape {
    return polygon(points.map(([x, y]) => this.pt(x, y)));
  }

  stroke(points: readonly Point[], width: number | readonly number[]): Shape {
    const w = typeof width === 'number' ? width * this.s : width.map((v) => v * this.s);
    return stroke(points.map(([x, y]) => this.pt(x, y)), w);
  }
}

export function drawFace(p: FaceParams, size: number): { rgb: Uint8Array; mask: Uint8Array } {
  const cv = new Canvas(size);
  const f = new Frame(p, size);
  const { rx, ryBottom } = p.face;

  cv.fillAll(backgroundPaint(p.background, size), C.background);

  // Body, back to front: shoulders, long hair falling behind the neck, neck, necklace.
  cv.fill(f.ellipse(0, ryBottom + 0.28, 0.5, 0.2), p.cloth, C.cloth);
  if (p.hairStyle === 'long' || p.hairStyle === 'curly') drawBackHair(cv, f, p);
  const neckSkin = shade(p.skin, 0.82);
  cv.fill(union(f.polygon([[-0.105, 0], [0.105, 0], [0.115, ryBottom + 0.14], [-0.115, ryBottom + 0.14]]), f.ellipse(0, ryBottom + 0.14, 0.115, 0.05)), neckSkin, C.neck);
  if (p.necklace) {
    const y = ryBottom + 0.07;
    const n = p.necklace;
    cv.fill(f.stroke(quadBezier([-0.11, y], [0, y + 2 * n.drop], [0.11, y]), 0.012), n.color, C.neck_l);
    cv.fill(f.ellipse(0, y + n.drop + 0.012, 0.012, 0.014), n.color, C.neck_l);
  }

  // Ears sit behind the face oval; only their outer halves show.
  for (const s of [-1, 1]) {
    cv.fill(f.ellipse(s * (rx - 0.01), p.eyes.y + 0.04, 0.042, 0.07, s * 0.15), shade(p.skin, 0.93), s < 0 ? C.l_ear : C.r_ear);
    cv.fill(f.ellipse(s * (rx + 0.012), p.eyes.y + 0.04, 0.016, 0.04, s * 0.15), shade(p.skin, 0.75));
  }

  drawFaceSkin(cv, f, p);
  drawNose(cv, f, p);
  for (const s of [-1, 1]) drawEye(cv, f, p, s);
  drawMouth(cv, f, p);
  if (p.hairStyle !== 'bald') drawFrontHair(cv, f, p);
  for (const s of [-1, 1]) drawBrow(cv, f, p, s);
  if (p.earrings) drawEarrings(cv, f, p);
  if (p.glasses) drawGlasses(cv, f, p);
  if (p.hat) drawHat(cv, f, p);
  if (p.occluder) drawOccluder(cv, f, p);

  applyLightingAndNoise(cv, p);
  return { rgb: cv.rgb, mask: cv.mask };
}

function backgroundPaint(bg: Background, size: number): Paint {
  const blend = (a: RGB, b: RGB, t: number, out: number[]) => {
    for (let i = 0; i < 3; i++) out[i] = a[i] + (b[i] - a[i]) * t;
  };
  switch (bg.kind) {
    case 'flat':
      return bg.color;
    case 'gradient': {
      const c = Math.cos(bg.angle);
      const s = Math.sin(bg.angle);
      const half = 0.5 * (Math.abs(c) + Math.abs(s));
      return (x, y, out) => blend(bg.from, bg.to, 0.5 + ((x / size - 0.5) * c + (y / size - 0.5) * s) / (2 * half), out);
    }
    case 'blotchy': {
      const { n, grid } = bg;
      return (x, y, out) => {
        const gx = (x / size) * (n - 1);
        const gy = (y / size) * (n - 1);
        const i = Math.min(Math.floor(gx), n - 2);
        const j = Math.min(Math.floor(gy), n - 2);
        const tx = gx - i;
        const ty = gy - j;
        const a = grid[j * n + i];
        const b = grid[j * n + i + 1];
        const c = grid[(j + 1) * n + i];
        const d = grid[(j + 1) * n + i + 1];
        for (let k = 0; k < 3; k++) {
          out[k] = (a[k] * (1 - tx) + b[k] * tx) * (1 - ty) + (c[k] * (1 - tx) + d[k] * tx) * ty;
        }
      };
    }
  }
}

/** Egg-shaped face outline: a rounder top, a longer lower half narrowing to the chin. */
function faceOutline(p: FaceParams): Point[] {
  const { rx, ryTop, ryBottom, jaw } = p.face;
  const pts: Point[] = [];
  for (let i = 0; i < 32; i++) {
    const t = (i / 32) * 2 * Math.PI;
    const s = Math.sin(t);
    pts.push(s < 0 ? [rx * Math.cos(t), ryTop * s] : [rx * Math.cos(t) * (1 - jaw * s * s), ryBottom * s]);
  }
  return pts;
}

function drawFaceSkin(cv: Canvas, f: Frame, p: FaceParams): void {
  const { rx, ryTop, ryBottom } = p.face;
  // Soft shading towards the rim gives the oval some volume.
  cv.fill(f.polygon(faceOutline(p)), (x, y, out) => {
    const u = f.faceX(x, y);
    const v = f.faceY(x, y);
    const r2 = (u / rx) ** 2 + (v / (v < 0 ? ryTop : ryBottom)) ** 2;
    const gain = 1.04 - 0.16 * r2 * r2;
    for (let i = 0; i < 3; i++) out[i] = Math.min(255, p.skin[i] * gain);
  }, C.skin);
  if (p.folds > 0) {
    const { mouth, nose } = p;
    for (const s of [-1, 1]) {
      const fold = quadBezier([s * (nose.width + 0.012), nose.length - 0.005], [s * (nose.width + 0.04), mouth.y - 0.03], [s * (mouth.halfWidth + 0.014), mouth.y - mouth.corner + 0.012], 8);
      cv.fill(f.stroke(fold, 0.008), shade(p.skin, 0.72), undefined, { opacity: Math.min(1, p.folds), within: C.skin });
    }
  }
}

function drawNose(cv: Canvas, f: Frame, p: FaceParams): void {
  const { length: L, width: w, flare, wrinkle } = p.nose;
  const top = p.eyes.y + 0.01;
  cv.fill(union(f.polygon([[-0.015, top], [0.015, top], [w * 0.9, L - 0.01], [-w * 0.9, L - 0.01]]), f.ellipse(0, L, w * flare, 0.024)), shade(p.skin, 0.93), C.nose);
  for (const s of [-1, 1]) {
    cv.fill(f.stroke([[s * 0.016, top + 0.015], [s * w * 0.95, L - 0.005]], 0.006), shade(p.skin, 0.82), undefined, { opacity: 0.7 });
    cv.fill(f.ellipse(s * 0.018 * flare, L + 0.01, 0.011 * flare, 0.006, s * 0.3), shade(p.skin, 0.45), C.nose);
  }
  cv.fill(f.ellipse(0, L - 0.006, 0.016, 0.011), shade(p.skin, 1.08), undefined, { opacity: 0.8 });
  // Wrinkles across the bridge (disgust).
  for (let i = 0; i < 3 && wrinkle > 0; i++) {
    const y = top + 0.02 + i * 0.013;
    cv.fill(f.stroke(quadBezier([-0.024, y + 0.004], [0, y - 0.006], [0.024, y + 0.004], 6), 0.006), shade(p.skin, 0.6), undefined, { opacity: wrinkle, within: C.nose });
  }
}

/** Almond eye outline for the eye on side s (-1 image left, +1 right). */
function eyeOutline(p: FaceParams, s: number): Point[] {
  const { x, y, halfWidth: hw, upper, lower, tilt } = p.eyes;
  const inner: Point = [s * (x - hw), y];
  const outer: Point = [s * (x + hw), y - tilt];
  const mid = (y + y - tilt) / 2;
  return [...quadBezier(inner, [s * x, mid - 2 * upper], outer, 10), ...quadBezier(outer, [s * x, mid + 2 * lower], inner, 10).slice(1, -1)];
}

function drawEye(cv: Canvas, f: Frame, p: FaceParams, s: number): void {
  const cls = s < 0 ? C.l_eye : C.r_eye;
  const e = p.eyes;
  const outline = eyeOutline(p, s);
  const eye = f.polygon(outline);
  cv.fill(eye, [238, 236, 230], cls);
  const ix = s * e.x + e.gazeX;
  const iy = e.y + e.gazeY;
  cv.fill(intersect(f.ellipse(ix, iy, e.irisR, e.irisR), eye), p.iris, cls);
  cv.fill(intersect(f.ellipse(ix, iy, e.irisR * 0.45, e.irisR * 0.45), eye), [15, 12, 12], cls);
  cv.fill(f.ellipse(ix + 0.007, iy - 0.007, 0.004, 0.004), [255, 255, 255], undefined, { opacity: 0.8 });
  // Upper lid line with lashes: the eye's strongest edge, and what still shows at 48 px.
  cv.fill(f.stroke(outline.slice(0, 11), 0.009), [35, 25, 25], cls);
}

function drawBrow(cv: Canvas, f: Frame, p: FaceParams, s: number): void {
  const b = p.brows;
  const inner: Point = [s * b.innerX, b.innerY];
  const outer: Point = [s * (b.innerX + b.length), b.outerY];
  const ctrl: Point = [s * (b.innerX + b.length * 0.45), (b.innerY + b.outerY) / 2 - 2 * b.arch];
  const pts = quadBezier(inner, ctrl, outer, 10);
  const widths = pts.map((_, i) => b.thickness * (1 - 0.45 * (i / 10)));
  cv.fill(f.stroke(pts, widths), p.browColor, s < 0 ? C.l_brow : C.r_brow);
}

/**
 * Mouth curves sampled across the width (denser at the corners), as functions of t = x / halfWidth
 * in -1..1. The opening and the lips follow separate profiles, so a round O and a thin pressed line
 * come from the same four curves.
 */
function mouthCurves(p: FaceParams) {
  const m = p.mouth;
  const n = 14;
  const ts = Array.from({ length: n + 1 }, (_, i) => -Math.cos((Math.PI * i) / n));
  const at = (fn: (t: number) => number): Point[] => ts.map((t) => [t * m.halfWidth, fn(t)]);
  const base = (t: number) => m.y - m.corner * t * t;
  const gap = (t: number) => Math.pow(Math.max(0, 1 - Math.abs(t) ** m.profile), 1 / m.profile);
  const lip = (t: number) => Math.pow(Math.max(0, 1 - t * t), 0.6);
  const raise = (t: number) => m.upperRaise * (0.25 + (0.75 * (m.raiseSide * t + 1)) / 2) * lip(t);
  const innerTop = (t: number) => base(t) - (m.open / 2) * gap(t) - raise(t);
  const innerBottom = (t: number) => base(t) + (m.open / 2) * gap(t);
  // Cupid's bow: the upper lip dips a little at the middle.
  const outerTop = (t: number) => innerTop(t) - m.upperLip * lip(t) + m.upperLip * 0.3 * Math.exp(-((t / 0.16) ** 2));
  const outerBottom = (t: number) => innerBottom(t) + m.lowerLip * lip(t);
  return {
    innerTop: at(innerTop),
    innerBottom: at(innerBottom),
    outerTop: at(outerTop),
    outerBottom: at(outerBottom),
    open: m.open > 0 || m.upperRaise > 0,
  };
}

function drawMouth(cv: Canvas, f: Frame, p: FaceParams): void {
  const m = p.mouth;
  const c = mouthCurves(p);
  const rev = (pts: Point[]) => [...pts].reverse();
  if (c.open) {
    const inside = f.polygon([...c.innerTop, ...rev(c.innerBottom)]);
    cv.fill(inside, [70, 22, 28], C.mouth);
    const teeth: RGB = [236, 232, 218];
    const band = m.teeth === 'both' ? 0.42 : 0.5;
    const depth = Math.max(m.open, m.upperRaise) * band;
    if (m.teeth === 'upper' || m.teeth === 'both') {
      cv.fill(intersect(f.polygon([...c.innerTop, ...rev(c.innerTop.map(([x, y]) => [x, y + depth] as Point))]), inside), teeth, C.mouth);
    }
    if (m.teeth === 'lower' || m.teeth === 'both') {
      cv.fill(intersect(f.polygon([...c.innerBottom, ...rev(c.innerBottom.map(([x, y]) => [x, y - depth] as Point))]), inside), shade(teeth, 0.92), C.mouth);
    }
  }
  cv.fill(f.polygon([...c.outerTop, ...rev(c.innerTop)]), shade(p.lipColor, 0.92), C.u_lip);
  cv.fill(f.polygon([...c.innerBottom, ...rev(c.outerBottom)]), p.lipColor, C.l_lip);
  if (!c.open) cv.fill(f.stroke(c.innerTop, 0.006), shade(p.lipColor, 0.45));
}

/** Region of the head above the hairline, for the style's hairline shape. */
function frontHairShape(f: Frame, p: FaceParams): Shape {
  const { rx, ryTop } = p.face;
  const R = rx * 1.1;
  const browTop = Math.min(p.brows.innerY, p.brows.outerY) - p.brows.thickness;
  let head: Shape = f.ellipse(0, -0.03, R, ryTop + 0.08);
  let centre = -0.2;
  let sides = -0.03;
  let power = 2.5;
  let sweep = 0;
  switch (p.hairStyle) {
    case 'bangs':
      centre = Math.min(-0.14, browTop - 0.015);
      power = 6;
      break;
    case 'sidepart':
      sweep = 0.075;
      break;
    case 'curly': {
      const curls: Shape[] = [head];
      for (let i = 0; i <= 10; i++) {
        const t = Math.PI * (1 + i / 10);
        curls.push(f.ellipse(R * Math.cos(t), -0.03 + (ryTop + 0.08) * Math.sin(t), 0.05, 0.05));
      }
      head = union(...curls);
      centre = -0.22;
      break;
    }
  }
  const hairline: Point[] = [];
  for (let i = 0; i <= 24; i++) {
    const x = -R * 1.3 + (2.6 * R * i) / 24;
    const t = Math.min(1, Math.abs(x) / R);
    const swept = sweep * Math.max(0, Math.min(1, 0.5 + (p.hairSide * x) / R)) * (1 - t * t);
    hairline.push([x, Math.min(sides, centre + (sides - centre) * t ** power + swept)]);
  }
  return intersect(head, f.polygon([...hairline, [R * 1.3, -0.7], [-R * 1.3, -0.7]]));
}

function drawFrontHair(cv: Canvas, f: Frame, p: FaceParams): void {
  cv.fill(frontHairShape(f, p), p.hair, C.hair);
  // A few darker strands so hair reads as hair, not a cap.
  const { rx, ryTop } = p.face;
  for (let i = -2; i <= 2; i++) {
    const x = i * rx * 0.3;
    cv.fill(f.stroke(quadBezier([x * 0.3, -ryTop - 0.06], [x * 1.1, -ryTop + 0.02], [x * 1.3, -0.12], 8), 0.007), shade(p.hair, 0.7), undefined, { opacity: 0.7, within: C.hair });
  }
}

function drawBackHair(cv: Canvas, f: Frame, p: FaceParams): void {
  const { rx, ryTop, ryBottom } = p.face;
  const R = rx * (p.hairStyle === 'curly' ? 1.35 : 1.2);
  const shape = union(f.ellipse(0, -0.03, R, ryTop + 0.1), f.polygon([[-R, -0.03], [R, -0.03], [R * 0.95, ryBottom + 0.12], [-R * 0.95, ryBottom + 0.12]]));
  cv.fill(shape, shade(p.hair, 0.85), C.hair);
}

function drawEarrings(cv: Canvas, f: Frame, p: FaceParams): void {
  const e = p.earrings!;
  for (const s of [-1, 1]) {
    const x = s * (p.face.rx + 0.005);
    const y = p.eyes.y + 0.12;
    cv.fill(e.hoop ? ring(f.ellipse(x, y + 0.02, 0.022, 0.024), 0.008) : f.ellipse(x, y, 0.013, 0.013), e.color, C.ear_r);
  }
}

function drawGlasses(cv: Canvas, f: Frame, p: FaceParams): void {
  const g = p.glasses!;
  const { x, y } = p.eyes;
  const parts: Shape[] = [f.stroke(quadBezier([-(x - g.rx), y - 0.005], [0, y - 0.025], [x - g.rx, y - 0.005], 6), 0.012)];
  for (const s of [-1, 1]) {
    cv.fill(f.ellipse(s * x, y, g.rx, g.ry), g.tint, undefined, { opacity: g.tintOpacity });
    parts.push(ring(f.ellipse(s * x, y, g.rx, g.ry), 0.012));
    parts.push(f.stroke([[s * (x + g.rx), y - 0.01], [s * (p.face.rx + 0.01), y - 0.02]], 0.01));
  }
  cv.fill(union(...parts), g.color, C.eye_g);
}

function drawHat(cv: Canvas, f: Frame, p: FaceParams): void {
  const h = p.hat!;
  const { rx, ryTop } = p.face;
  // A beanie hugging the skull: the head outline, a little larger, above the hat's rim line.
  const crown = intersect(f.ellipse(0, -0.03, rx * 1.16, ryTop + 0.11), f.polygon([[-0.6, h.y], [0.6, h.y], [0.6, -0.9], [-0.6, -0.9]]));
  cv.fill(crown, h.color, C.hat);
  cv.fill(f.stroke([[-rx * 1.12, h.y - 0.015], [rx * 1.12, h.y - 0.015]], 0.045), h.band, C.hat);
  if (h.brim) cv.fill(f.ellipse(0, h.y + 0.005, rx * 0.95, 0.035), shade(h.color, 0.75), C.hat);
}

function drawOccluder(cv: Canvas, f: Frame, p: FaceParams): void {
  const o = p.occluder!;
  const c = Math.cos(o.angle);
  const s = Math.sin(o.angle);
  // Occluder-local coordinates (scaled, turned) -> face units.
  const at = (x: number, y: number): Point => [o.x + o.size * (x * c - y * s), o.y + o.size * (x * s + y * c)];
  let shape: Shape;
  if (o.kind === 'hand') {
    const parts = [f.ellipse(...at(0, 0.04), 0.085 * o.size, 0.1 * o.size, o.angle)];
    for (let i = 0; i < 4; i++) {
      const x = -0.06 + i * 0.04;
      parts.push(f.stroke([at(x, 0), at(x * 1.15, -0.11 + Math.abs(i - 1.5) * 0.015)], 0.034 * o.size));
    }
    parts.push(f.stroke([at(0.07, 0.07), at(0.13, -0.01)], 0.04 * o.size));
    shape = union(...parts);
  } else {
    shape = f.polygon([at(-0.13, -0.07), at(0.13, -0.07), at(0.13, 0.07), at(-0.13, 0.07)]);
  }
  cv.fill(shape, o.color, C.background);
}

/**
 * Lighting gradient, then sensor noise, on the image only (the mask is untouched). The noise is
 * approximately normal: the sum of the four bytes of one random word (Irwin-Hall, n = 4) is
 * bell-shaped to within a few percent and far cheaper than Box-Muller for 30k draws an image.
 */
function applyLightingAndNoise(cv: Canvas, p: FaceParams): void {
  const { size } = cv;
  // A clamped view rounds and saturates on store.
  const rgb = new Uint8ClampedArray(cv.rgb.buffer, cv.rgb.byteOffset, cv.rgb.length);
  const { strength, angle } = p.lighting;
  const half = 0.5 * (Math.abs(Math.cos(angle)) + Math.abs(Math.sin(angle)));
  const gx = (strength * Math.cos(angle)) / half / size;
  const gy = (strength * Math.sin(angle)) / half / size;
  const rng = new Rng(p.noise.seed);
  const scale = p.noise.sigma / Math.sqrt((4 * (256 * 256 - 1)) / 12);
  for (let y = 0, o = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const gain = 1 + gx * (x + 0.5 - size / 2) + gy * (y + 0.5 - size / 2);
      for (let ch = 0; ch < 3; ch++, o++) {
        const w = rng.nextU32();
        const z = (w & 255) + ((w >>> 8) & 255) + ((w >>> 16) & 255) + (w >>> 24) - 510;
        rgb[o] = rgb[o] * gain + z * scale;
      }
    }
  }
}
