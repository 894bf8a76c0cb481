/**
 * From the 468 (478 with irises) points of MediaPipe's face mesh to a 19-class mask: each part is a
 * polygon through the mesh's standard contours, the edge lists of MediaPipe's
 * `face_mesh_connections.py` (FACEMESH_FACE_OVAL, _LIPS, _LEFT/RIGHT_EYE, _LEFT/RIGHT_EYEBROW,
 * _NOSE) walked in order; no index here is of our own choosing.
 *
 * - skin: the face oval, under every other part.
 * - brows: the region between each brow's lower and upper chain; eyes: the eyelid contour.
 * - nose: the convex hull of FACEMESH_NOSE's points (its bridge line and nostril outline), since
 *   those edges outline no region of their own.
 * - u_lip / l_lip: between the outer and inner lip contours; mouth: inside the inner contour.
 * - Left and right are the subject's own (MediaPipe's LEFT_* is the subject's left, which is on
 *   the image's right in an unmirrored photo), mapped onto CelebAMask-HQ's l_* and r_* ids.
 *   SLFER's 8 parts merge the two sides, so training does not depend on this choice.
 * - Everything outside the face oval is UNKNOWN_CLASS: hair, ears, neck, clothes, a hat and the
 *   background all lie there, and landmarks cannot tell them apart. So these masks never say
 *   "background": calling that region background would teach ST that hair and ears are background,
 *   and would make background the largest part CT counts in every aligned face.
 * - Glasses (eye_g) and hair over the forehead are not seen: the oval is skin wherever it reaches.
 */
import { PARSING_CLASSES, UNKNOWN_CLASS } from '../data/labels.js';
import { convexHull, fillPolygon, type Point } from './polygon-fill.js';

const id = (name: (typeof PARSING_CLASSES)[number]): number => PARSING_CLASSES.indexOf(name);

/** FACEMESH_FACE_OVAL, from the top of the forehead round the subject's left side (image right). */
export const FACE_OVAL = [
  10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127,
  162, 21, 54, 103, 67, 109,
];

// FACEMESH_LIPS: four chains from the subject's right mouth corner (outer 61, inner 78) to the left (291, 308).
export const LIPS_UPPER_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291];
export const LIPS_LOWER_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291];
export const LIPS_UPPER_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308];
export const LIPS_LOWER_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308];

/** FACEMESH_RIGHT_EYE (the subject's right): lower lid from the outer corner 33 to the inner 133, then the upper lid back. */
export const RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246];
/** FACEMESH_LEFT_EYE: lower lid from the outer corner 263 to the inner 362, then the upper lid back. */
export const LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466];
/** FACEMESH_RIGHT_EYEBROW: the lower chain outward-in (46..55), then the upper chain inward-out (107..70). */
export const RIGHT_EYEBROW = [46, 53, 52, 65, 55, 107, 66, 105, 63, 70];
/** FACEMESH_LEFT_EYEBROW: the lower chain (276..285), then the upper chain back (336..300). */
export const LEFT_EYEBROW = [276, 283, 282, 295, 285, 336, 296, 334, 293, 300];
/** The points of FACEMESH_NOSE (bridge 168..2 and the nostril outline 98..64). */
export const NOSE_POINTS = [168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294, 278, 344, 440, 275, 45, 220, 115, 48, 64];

/** Mesh points the regions use: the 468 of the face mesh (the 10 iris points are not needed). */
export const MESH_POINTS = 468;

/** A part and how to draw it from the mesh, in painting order: later parts cover earlier ones. */
export interface Region {
  classId: number;
  polygon: (mesh: readonly Point[]) => Point[];
}

const loop = (indices: readonly number[]) => (mesh: readonly Point[]) => indices.map((i) => mesh[i]);
const between = (outer: readonly number[], inner: readonly number[]) => loop([...outer, ...[...inner].reverse()]);

export const REGIONS: readonly Region[] = [
  { classId: id('skin'), polygon: loop(FACE_OVAL) },
  { classId: id('nose'), polygon: (mesh) => convexHull(NOSE_POINTS.map((i) => mesh[i])) },
  { classId: id('l_brow'), polygon: loop(LEFT_EYEBROW) },
  { classId: id('r_brow'), polygon: loop(RIGHT_EYEBROW) },
  { classId: id('l_eye'), polygon: loop(LEFT_EYE) },
  { classId: id('r_eye'), polygon: loop(RIGHT_EYE) },
  { classId: id('u_lip'), polygon: between(LIPS_UPPER_OUTER, LIPS_UPPER_INNER) },
  { classId: id('l_lip'), polygon: between(LIPS_LOWER_OUTER, LIPS_LOWER_INNER) },
  { classId: id('mouth'), polygon: between(LIPS_UPPER_INNER, LIPS_LOWER_INNER.slice(1, -1)) },
];

/** The 19-class mask (width × height) that the mesh's points, in image pixels, outline. */
export function meshToMask(mesh: readonly Point[], width: number, height: number): Uint8Array {
  if (mesh.length < MESH_POINTS) throw new Error(`a face mesh has ${MESH_POINTS} points, got ${mesh.length}`);
  const mask = new Uint8Array(width * height).fill(UNKNOWN_CLASS);
  for (const r of REGIONS) fillPolygon(mask, width, height, r.polygon(mesh), r.classId);
  return mask;
}
