/**
 * The colours labels are drawn in, wherever slfer-dist draws them (parse --preview, eval --masks),
 * so a part looks the same in every picture.
 */
import type { Colour } from '../util/canvas.js';
import { UNKNOWN_CLASS, UNKNOWN_PART } from './labels.js';

/** face-parsing.PyTorch's part_colors (test.py's vis_parsing_maps), background white as there. */
export const CLASS_COLOURS: readonly Colour[] = [
  [255, 255, 255], [255, 85, 0], [255, 170, 0], [255, 0, 85], [255, 0, 170], [0, 255, 0], [85, 255, 0], [170, 255, 0], [0, 255, 85], [0, 255, 170],
  [0, 0, 255], [85, 0, 255], [170, 0, 255], [0, 85, 255], [0, 170, 255], [255, 255, 0], [255, 255, 85], [255, 255, 170], [255, 0, 255],
]; // prettier-ignore

/**
 * PART_CLASSES order: background, skin, eye, ear, nose, mouth, neck, hair. Hues far apart (blue
 * eyes, green nose, red mouth, orange ears, purple neck) and skin a pale tone that all of them stand
 * out on; background white as in face-parsing's colours.
 */
export const PART_COLOURS: readonly Colour[] = [[255, 255, 255], [250, 200, 160], [0, 150, 255], [255, 160, 0], [0, 190, 0], [225, 0, 60], [150, 90, 255], [100, 60, 30]];

/** A pixel no part could be assigned to (255), and any id outside the palette. */
export const UNKNOWN_COLOUR: Colour = [150, 150, 150];

const lookup = (palette: readonly Colour[], unknown: number) => (id: number): Colour => (id === unknown ? UNKNOWN_COLOUR : (palette[id] ?? UNKNOWN_COLOUR));

/** Colour of a 19-class face-parsing id (UNKNOWN_CLASS grey). */
export const classColour = lookup(CLASS_COLOURS, UNKNOWN_CLASS);
/** Colour of an 8-part id (UNKNOWN_PART grey). */
export const partColour = lookup(PART_COLOURS, UNKNOWN_PART);
