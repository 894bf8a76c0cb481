import { describe, expect, it } from 'vitest';
import { PARSING_CLASSES } from '../../src/data/labels.js';
import {
  FACE_OVAL,
  LEFT_EYE,
  LEFT_EYEBROW,
  LIPS_LOWER_INNER,
  LIPS_LOWER_OUTER,
  LIPS_UPPER_INNER,
  LIPS_UPPER_OUTER,
  MESH_POINTS,
  NOSE_POINTS,
  REGIONS,
  RIGHT_EYE,
  RIGHT_EYEBROW,
} from '../../src/parse/face-mesh-regions.js';
import { convexHull, fillPolygon, type Point } from '../../src/parse/polygon-fill.js';

const fill = (w: number, h: number, poly: Point[], value = 1, into?: Uint8Array) => {
  const out = into ?? new Uint8Array(w * h);
  fillPolygon(out, w, h, poly, value);
  return out;
};
const rows = (m: Uint8Array, w: number) => Array.from({ length: m.length / w }, (_, y) => Array.from(m.subarray(y * w, (y + 1) * w)).join(''));

describe('fillPolygon: pixels whose centre is inside', () => {
  it('fills a rectangle on pixel edges exactly, and nothing else', () => {
    expect(rows(fill(5, 4, [[1, 1], [4, 1], [4, 3], [1, 3]]), 5)).toEqual(['00000', '01110', '01110', '00000']);
  });

  it('decides by the pixel centre: a square from 0.6 to 2.4 holds only the centre 1.5', () => {
    // Centres 0.5 1.5 2.5: only 1.5 lies in [0.6, 2.4).
    expect(rows(fill(4, 4, [[0.6, 0.6], [2.4, 0.6], [2.4, 2.4], [0.6, 2.4]]), 4)).toEqual(['0000', '0100', '0000', '0000']);
  });

  it('gives a pixel on an edge shared by two polygons to exactly one of them', () => {
    const m = new Uint8Array(6 * 4);
    fill(6, 4, [[0, 0], [3, 0], [3, 4], [0, 4]], 1, m);
    const before = Uint8Array.from(m);
    fill(6, 4, [[3, 0], [6, 0], [6, 4], [3, 4]], 2, m);
    expect(rows(m, 6)).toEqual(['111222', '111222', '111222', '111222']);
    // The second polygon did not touch the first one's pixels.
    expect(Array.from(m.subarray(0, 3))).toEqual(Array.from(before.subarray(0, 3)));
  });

  it('fills a concave polygon by the even-odd rule and clips what lies outside the image', () => {
    // A "U": the notch between x 2 and 4 above y 3 stays empty.
    const u: Point[] = [[1, 0], [2, 0], [2, 3], [4, 3], [4, 0], [5, 0], [5, 5], [1, 5]];
    expect(rows(fill(6, 5, u), 6)).toEqual(['010010', '010010', '010010', '011110', '011110']);
    expect(rows(fill(3, 2, [[-5, -5], [10, -5], [10, 10], [-5, 10]]), 3)).toEqual(['111', '111']);
    expect(rows(fill(3, 2, [[-5, -5], [-1, -5], [-1, -1]]), 3)).toEqual(['000', '000']);
  });

  it('ignores degenerate polygons', () => {
    expect(fill(3, 3, [[0, 0], [3, 3]]).every((v) => v === 0)).toBe(true);
    expect(fill(3, 3, [[0, 1], [3, 1], [1.5, 1]]).every((v) => v === 0)).toBe(true);
  });
});

describe('convexHull', () => {
  it('keeps the extreme points in order, without inner or collinear ones', () => {
    const hull = convexHull([[0, 0], [2, 0], [4, 0], [4, 4], [0, 4], [1, 1], [2, 3], [0, 2]]);
    expect(hull).toEqual([[0, 0], [4, 0], [4, 4], [0, 4]]);
  });
});

describe('the mesh contours', () => {
  const loops: Record<string, number[]> = { FACE_OVAL, LEFT_EYE, RIGHT_EYE, LEFT_EYEBROW, RIGHT_EYEBROW };

  it('are loops of distinct face-mesh points', () => {
    for (const [name, l] of Object.entries(loops)) {
      expect(new Set(l).size, name).toBe(l.length);
      expect(l.every((i) => Number.isInteger(i) && i >= 0 && i < MESH_POINTS), name).toBe(true);
    }
    expect(FACE_OVAL).toHaveLength(36);
    expect(new Set(NOSE_POINTS).size).toBe(NOSE_POINTS.length);
  });

  it('lip chains run from the same mouth corners, so the lip and mouth polygons close', () => {
    for (const [a, b] of [[LIPS_UPPER_OUTER, LIPS_LOWER_OUTER], [LIPS_UPPER_INNER, LIPS_LOWER_INNER]]) {
      expect([a[0], a[a.length - 1]]).toEqual([b[0], b[b.length - 1]]);
    }
  });

  it('paint skin first and the parts over it, each a CelebAMask-HQ class that landmarks can see', () => {
    const names = REGIONS.map((r) => PARSING_CLASSES[r.classId]);
    expect(names[0]).toBe('skin');
    expect(new Set(names)).toEqual(new Set(['skin', 'nose', 'l_brow', 'r_brow', 'l_eye', 'r_eye', 'u_lip', 'l_lip', 'mouth']));
  });
});
