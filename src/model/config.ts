/** What the SLFER network looks like: the paper's ablation variants and the size knobs tests use. */

export const VARIANTS = ['baseline', 'ct', 'st', 'ct_st', 'proposed'] as const;
export type Variant = (typeof VARIANTS)[number];

export interface ModelConfig {
  variant: Variant;
  /** Channel multiplier on ResNet18's 64/128/256/512 (and the heads); 1 is the paper's network. */
  width: number;
  /** Square input side in pixels; a multiple of 32 so ST's decoder returns to the input size. */
  inputSize: number;
  /** SE bottleneck ratio (Hu et al.: 16). */
  seReduction: number;
  /**
   * 'batch': BatchNorm normalises with batch statistics while training (the paper). 'frozen': it
   * always uses its moving statistics, as when fine-tuning with small batches; the loss is then a
   * plain mean over samples, so a batch split across workers gives exactly the same gradients.
   */
  batchNorm?: 'batch' | 'frozen';
  numExpressions: number;
  numParts: number;
}

/** Which parts of the network a variant has (paper Table 1). */
export interface VariantParts {
  se: boolean;
  st: boolean;
  ct: boolean;
}

export function variantParts(v: Variant): VariantParts {
  switch (v) {
    case 'baseline':
      return { se: false, st: false, ct: false };
    case 'ct':
      return { se: false, st: false, ct: true };
    case 'st':
      return { se: false, st: true, ct: false };
    case 'ct_st':
      return { se: false, st: true, ct: true };
    case 'proposed':
      return { se: true, st: true, ct: true };
  }
}

/** A layer's channel count at this width; never below 4 so tiny test models stay well-formed. */
export function channels(base: number, width: number): number {
  return Math.max(4, Math.round(base * width));
}
