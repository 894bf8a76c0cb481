/**
 * Mask arithmetic on raw pixel arrays: the 19 face-parsing classes on disk become SLFER's 8 parts,
 * and the parts present in a crop become CT's target vector.
 */
import { errors } from '../errors.js';
import { NUM_PARTS, PARSING_CLASSES, PARSING_TO_PART } from './labels.js';

/** Maps every pixel of a 19-class face-parsing mask to its facial part (PARSING_TO_PART). */
export function aggregateParts(mask19: Uint8Array, source = 'mask'): Uint8Array {
  const out = new Uint8Array(mask19.length);
  for (let i = 0; i < mask19.length; i++) {
    const v = mask19[i];
    if (v >= PARSING_CLASSES.length) {
      throw errors.invalidArgument(
        source,
        `contains the value ${v}, which is not a face-parsing class (0..${PARSING_CLASSES.length - 1})`,
        'masks must be 8-bit single-channel PNGs of BiSeNet class indices, not colour visualisations; see "Data layouts" in the README',
      );
    }
    out[i] = PARSING_TO_PART[v];
  }
  return out;
}

/**
 * CT target: 1 for the n parts covering the most pixels among those present (count > 0), else 0.
 * Ties go to the lower part index, so the vector depends only on the mask. Fewer than n parts
 * present: only those present are 1.
 */
export function topNComponents(parts: Uint8Array, n: number, numParts: number = NUM_PARTS): Float32Array {
  const counts = new Array<number>(numParts).fill(0);
  for (let i = 0; i < parts.length; i++) counts[parts[i]]++;
  const present = counts.map((c, part) => ({ c, part })).filter((e) => e.c > 0);
  present.sort((a, b) => b.c - a.c || a.part - b.part);
  const out = new Float32Array(numParts);
  for (const { part } of present.slice(0, n)) out[part] = 1;
  return out;
}
