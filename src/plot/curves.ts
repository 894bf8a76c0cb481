import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import type { EpochMetrics } from '../train/run-files.js';
import { writeChart } from './render.js';

/** The training-curves files in a run folder (`<base>.svg`, `<base>.png`). */
export const CURVES_BASE = 'curves';

/** One point of the chart: a loss term's or the test accuracy's value at an epoch. */
export interface CurvePoint {
  epoch: number;
  series: string;
  value: number;
}

/**
 * The long-format rows the chart draws: the total loss and each term the variant has (a term
 * metrics.jsonl does not record is left out, not drawn as zero), and the test accuracy in %.
 */
export function curvePoints(metrics: EpochMetrics[]): { loss: CurvePoint[]; accuracy: CurvePoint[] } {
  const loss: CurvePoint[] = [];
  const accuracy: CurvePoint[] = [];
  for (const m of metrics) {
    const epoch = m.epoch;
    loss.push({ epoch, series: 'total', value: m.trainLoss });
    const p = m.trainLossParts;
    loss.push({ epoch, series: 'expression (ECT)', value: p.expression });
    if (p.segmentation !== undefined) loss.push({ epoch, series: 'segmentation (ST)', value: p.segmentation });
    if (p.components !== undefined) loss.push({ epoch, series: 'components (CT)', value: p.components });
    accuracy.push({ epoch, series: 'test accuracy', value: m.testAccuracy * 100 });
  }
  return { loss, accuracy };
}

/** Loss terms and test accuracy per epoch, side by side: two panels, each on its own y scale. */
export function curvesSpec(metrics: EpochMetrics[], title: string): TopLevelSpec {
  const { loss, accuracy } = curvePoints(metrics);
  // Integer ticks only: a fractional epoch does not exist.
  const x = { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    hconcat: [
      {
        width: 320,
        height: 220,
        data: { name: 'loss', values: loss },
        mark: { type: 'line', point: true },
        encoding: {
          x,
          y: { field: 'value', type: 'quantitative', title: 'training loss' },
          color: { field: 'series', type: 'nominal', title: 'loss term', sort: null },
        },
      },
      {
        width: 320,
        height: 220,
        data: { name: 'accuracy', values: accuracy },
        mark: { type: 'line', color: '#2ca02c', point: { color: '#2ca02c' } },
        encoding: { x, y: { field: 'value', type: 'quantitative', title: 'test accuracy (%)', scale: { domain: [0, 100] } } },
      },
    ],
    resolve: { scale: { color: 'independent' } },
  };
}

/** The title of a run's curves, the same whether finishRun or `plot` draws them. */
export const curvesTitle = (variant: string, dataset: string) => `${variant} on ${dataset}: training curves`;

/** Writes curves.svg and curves.png into the run folder from its metrics (nothing for a run with no epoch yet). */
export async function writeCurves(runDir: string, metrics: EpochMetrics[], title: string): Promise<{ svg: string; png: string } | undefined> {
  if (!metrics.length) return undefined;
  return writeChart(join(runDir, CURVES_BASE), curvesSpec(metrics, title));
}
