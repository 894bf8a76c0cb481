import { EXPRESSIONS } from '../data/labels.js';

/** Classification quality over a test set (what report.json and metrics.jsonl carry). */
export interface EvalResult {
  count: number;
  accuracy: number;
  meanClassAccuracy: number;
  /** Per expression, in EXPRESSIONS order; NaN-free: a class with no test images gets null. */
  perClassAccuracy: Record<string, number | null>;
  /** confusionMatrix[true][predicted] counts. */
  confusionMatrix: number[][];
  classNames: string[];
}

/** Accumulates predictions into a confusion matrix. */
export class ConfusionMatrix {
  readonly counts: number[][];

  constructor(readonly classNames: readonly string[] = EXPRESSIONS) {
    this.counts = classNames.map(() => classNames.map(() => 0));
  }

  add(truth: ArrayLike<number>, predicted: ArrayLike<number>): void {
    for (let i = 0; i < truth.length; i++) this.counts[truth[i]][predicted[i]] += 1;
  }

  result(): EvalResult {
    const k = this.classNames.length;
    let correct = 0;
    let count = 0;
    const perClass: Record<string, number | null> = {};
    const present: number[] = [];
    for (let c = 0; c < k; c++) {
      const row = this.counts[c].reduce((a, b) => a + b, 0);
      correct += this.counts[c][c];
      count += row;
      perClass[this.classNames[c]] = row ? this.counts[c][c] / row : null;
      if (row) present.push(this.counts[c][c] / row);
    }
    return {
      count,
      accuracy: count ? correct / count : 0,
      meanClassAccuracy: present.length ? present.reduce((a, b) => a + b, 0) / present.length : 0,
      perClassAccuracy: perClass,
      confusionMatrix: this.counts.map((r) => [...r]),
      classNames: [...this.classNames],
    };
  }
}
