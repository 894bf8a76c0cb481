/**
 * Label spaces. Expressions use RAF-DB's order (its label files say 1..7; here 0..6), and SFEW's
 * folder names map onto the same order so one trained model serves both datasets.
 */
export const EXPRESSIONS = ['Surprise', 'Fear', 'Disgust', 'Happiness', 'Sadness', 'Anger', 'Neutral'] as const;
export type Expression = (typeof EXPRESSIONS)[number];
export const NUM_EXPRESSIONS = EXPRESSIONS.length;

/** SFEW 2.0 class folder -> expression index. */
export const SFEW_FOLDERS: Readonly<Record<string, number>> = {
  Surprise: 0,
  Fear: 1,
  Disgust: 2,
  Happy: 3,
  Sad: 4,
  Angry: 5,
  Neutral: 6,
};

/** BiSeNet face parsing (face-parsing.PyTorch, CelebAMask-HQ): the 19 classes the masks on disk hold. */
export const PARSING_CLASSES = [
  'background', 'skin', 'l_brow', 'r_brow', 'l_eye', 'r_eye', 'eye_g', 'l_ear', 'r_ear', 'ear_r',
  'nose', 'mouth', 'u_lip', 'l_lip', 'neck', 'neck_l', 'cloth', 'hair', 'hat',
] as const;

/**
 * A pixel no part could be assigned to, in a 19-class mask on disk (`parse --method landmarks`
 * writes it where landmarks cannot tell hair, ears, neck, clothes and background apart). It passes
 * through aggregation as UNKNOWN_PART; the ST loss and the CT counts leave such pixels out. 255 is
 * segmentation's usual ignore label (the default of face-parsing.PyTorch's losses too).
 */
export const UNKNOWN_CLASS = 255;

/** The 8 facial parts SLFER's ST and CT predict (the paper's aggregation, as in SSPL's code). */
export const PART_CLASSES = ['background', 'skin', 'eye', 'ear', 'nose', 'mouth', 'neck', 'hair'] as const;
export const NUM_PARTS = PART_CLASSES.length;

/** UNKNOWN_CLASS after aggregation: same value, so a mask keeps one meaning for "unknown" throughout. */
export const UNKNOWN_PART = 255;

/** PARSING_CLASSES index -> PART_CLASSES index. */
export const PARSING_TO_PART: Readonly<Uint8Array> = Uint8Array.from([
  0, // background
  1, // skin
  2, 2, 2, 2, 2, // l_brow r_brow l_eye r_eye eye_g -> eye
  3, 3, 3, // l_ear r_ear ear_r -> ear
  4, // nose
  5, 5, 5, // mouth u_lip l_lip -> mouth
  6, 6, 6, // neck neck_l cloth -> neck
  7, 7, // hair hat -> hair
]);
