import type { TopLevelSpec } from 'vega-lite';
import type { EvalResult } from './metrics.js';

/**
 * The confusion matrix as a vega-lite heatmap: rows are true expressions, columns predictions,
 * each cell shaded by the fraction of its row (so rare classes read as well as common ones) and
 * labelled with the count. Rendered by src/plot/render.ts to SVG and PNG.
 */
export function confusionMatrixSpec(r: EvalResult, title: string): TopLevelSpec {
  const names = [...r.classNames];
  const cells = r.confusionMatrix.flatMap((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return row.map((n, j) => ({ true: names[i], predicted: names[j], count: n, fraction: n / total }));
  });
  const axis = (field: 'true' | 'predicted') => ({ field, type: 'nominal', sort: names, title: field, axis: { labelAngle: field === 'predicted' ? -40 : 0 } }) as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 64 * names.length,
    height: 64 * names.length,
    data: { name: 'cells', values: cells },
    encoding: { x: axis('predicted'), y: axis('true') },
    layer: [
      {
        mark: { type: 'rect', stroke: '#999999' },
        encoding: { color: { field: 'fraction', type: 'quantitative', title: 'fraction of row', scale: { scheme: 'blues', domain: [0, 1] } } },
      },
      {
        mark: { type: 'text', fontSize: 14 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          // White on the dark cells, black on the light ones.
          color: { condition: { test: 'datum.fraction > 0.6', value: '#ffffff' }, value: '#000000' },
        },
      },
    ],
  };
}
