import { TSNE } from '@saehrimnir/druidjs';
import type { TopLevelSpec } from 'vega-lite';
import { EXPRESSIONS } from '../data/labels.js';
import { errors } from '../errors.js';

/** The t-SNE files in a run folder (`<base>.svg`, `.png`, `.json`). */
export const TSNE_BASE = 'tsne';

export interface TsneOptions {
  /** Effective number of neighbours (van der Maaten: 5-50); capped below the point count. */
  perplexity: number;
  /** Seeds druidjs's initial layout: the same seed gives the same coordinates. */
  seed: number;
  /** Gradient steps (druidjs's default is 500). */
  iterations: number;
}

export const DEFAULT_TSNE: TsneOptions = { perplexity: 30, seed: 0, iterations: 500 };

/** 2-D t-SNE (druidjs's exact-gradient TSNE) of `rows`, one [x, y] per row, and the perplexity used. */
export function tsne2d(rows: Float64Array[], o: TsneOptions): { points: [number, number][]; perplexity: number } {
  if (rows.length < 3) throw errors.invalidArgument('--tsne', `needs at least 3 decoded test images, and there are ${rows.length}`, 'plot a run whose test split holds more images');
  if (!(o.perplexity > 0)) throw errors.invalidArgument('--perplexity', `must be a positive number, got ${o.perplexity}`, 'pass e.g. --perplexity 30');
  // A perplexity near the point count leaves no neighbourhood to choose: t-SNE needs it below (n - 1) / 3.
  const perplexity = Math.max(1, Math.min(o.perplexity, (rows.length - 1) / 3));
  const y = new TSNE(rows, { perplexity, seed: o.seed, d: 2 }).transform(o.iterations);
  return { points: y.map((p) => [p[0], p[1]]), perplexity };
}

/** A scatter of the 2-D points coloured by expression, classes in RAF-DB order. */
export function tsneSpec(points: [number, number][], labels: number[], title: string): TopLevelSpec {
  const values = points.map(([x, y], i) => ({ x, y, expression: EXPRESSIONS[labels[i]] }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 420,
    height: 420,
    data: { name: 'points', values },
    mark: { type: 'circle', size: 30, opacity: 0.8 },
    encoding: {
      // t-SNE's axes have no units: a bare frame says so.
      x: { field: 'x', type: 'quantitative', title: 't-SNE 1', axis: { labels: false, ticks: false, grid: false } },
      y: { field: 'y', type: 'quantitative', title: 't-SNE 2', axis: { labels: false, ticks: false, grid: false } },
      color: { field: 'expression', type: 'nominal', title: 'expression', scale: { domain: [...EXPRESSIONS], scheme: 'category10' } },
    },
  };
}
