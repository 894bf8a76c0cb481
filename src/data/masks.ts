/**
 * Mask arithmetic on raw pixel arrays: the 19 face-parsing classes on disk become SLFER's 8 parts,
 * and the parts present in a crop become CT's target vector. UNKNOWN_CLASS (a pixel no part could be
 * assigned to) stays unknown through both: it is not a part, so it is never counted as one.
 */
import { errors } from '../errors.js';
import { NUM_PARTS, PARSING_CLASSES, PARSING_TO_PART, UNKNOWN_CLASS, UNKNOWN_PART } from './labels.js';

/** Maps every pixel of a 19-class face-parsing mask to its facial part (PARSING_TO_PART); unknown stays unknown. */
export function aggregateParts(mask19: Uint8Array, source = 'mask'): Uint8Array {
  const out = new Uint8Array(mask19.length);
  for (let i = 0; i < mask19.length; i++) {
    const v = mask19[i];
    if (v < PARSING_CLASSES.length) out[i] = PARSING_TO_PART[v];
    else if (v === UNKNOWN_CLASS) out[i] = UNKNOWN_PART;
    else {
      throw errors.invalidArgument(
        source,
        `contains the value ${v}, which is not a face-parsing class (0..${PARSING_CLASSES.length - 1}, or ${UNKNOWN_CLASS} for unknown)`,
        'masks must be 8-bit single-channel PNGs of BiSeNet class indices, not colour visualisations; see "Data layouts" in the README',
      );
    }
  }
  return out;
}

/**
 * CT target: 1 for the n parts covering the most pixels among those present (count > 0), else 0.
 * Unknown pixels are not counted. Ties go to the lower part index, so the vector depends only on
 * the mask. Fewer than n parts present: only those present are 1.
 */
export function topNComponents(parts: Uint8Array, n: number, numParts: number = NUM_PARTS): Float32Array {
  const counts = new Array<number>(numParts).fill(0);
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (p < numParts) counts[p]++;
    else if (p !== UNKNOWN_PART) {
      throw errors.invalidArgument('part mask', `holds the value ${p} at pixel ${i}, which is neither a part (0..${numParts - 1}) nor unknown (${UNKNOWN_PART})`, 'build part masks with aggregateParts');
    }
  }
  const present = counts.map((c, part) => ({ c, part })).filter((e) => e.c > 0);
  present.sort((a, b) => b.c - a.c || a.part - b.part);
  const out = new Float32Array(numParts);
  for (const { part } of present.slice(0, n)) out[part] = 1;
  return out;
}
