/**
 * The paper's numbers (test accuracy, %), to print beside ours. Table 1: the ablation of the
 * auxiliary tasks; Table 3: the loss weights λ1 (ST) and λ2 (CT). Fig. 3 (the number n of dominant
 * components) is a plot without printed values, so it has none here.
 */
import type { Variant } from '../model/config.js';

export interface PaperAccuracy {
  rafdb: number;
  sfew: number;
}

export const TABLE1: Record<Variant, PaperAccuracy> = {
  baseline: { rafdb: 86.93, sfew: 52.98 },
  ct: { rafdb: 87.77, sfew: 55.73 },
  st: { rafdb: 87.87, sfew: 54.35 },
  ct_st: { rafdb: 88.01, sfew: 59.63 },
  proposed: { rafdb: 88.33, sfew: 59.86 },
};

/** Table 3 (a): λ1 with λ2 = 0.5. */
export const TABLE3_LAMBDA1: Record<string, PaperAccuracy> = {
  '0': { rafdb: 87.54, sfew: 57.56 },
  '0.001': { rafdb: 87.9, sfew: 57.79 },
  '0.1': { rafdb: 88.07, sfew: 58.52 },
  '0.5': { rafdb: 88.33, sfew: 59.86 },
  '1': { rafdb: 88.13, sfew: 57.79 },
};

/** Table 3 (b): λ2 with λ1 = 0.5. */
export const TABLE3_LAMBDA2: Record<string, PaperAccuracy> = {
  '0': { rafdb: 87.74, sfew: 55.96 },
  '0.001': { rafdb: 87.84, sfew: 56.42 },
  '0.1': { rafdb: 87.77, sfew: 57.79 },
  '0.5': { rafdb: 88.33, sfew: 59.86 },
  '1': { rafdb: 87.64, sfew: 56.19 },
};

export const PAPER_LAMBDAS = [0, 0.001, 0.1, 0.5, 1];
export const PAPER_TOPN = [1, 2, 3, 4, 5, 6, 7, 8];
