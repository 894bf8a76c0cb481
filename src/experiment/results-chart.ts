import type { TopLevelSpec } from 'vega-lite';
import type { ExperimentResults } from './results.js';

/**
 * results.svg/png: one bar per row (our mean test accuracy, with a ±1 standard deviation rule over
 * the seeds when there are several), one panel per table, and the paper's value for the dataset
 * as a tick where it has one (RAF-DB's for RAF-DB and the synthetic set, SFEW's for SFEW).
 */
export function resultsSpec(r: ExperimentResults): TopLevelSpec {
  const paperKey = r.dataset === 'sfew' ? 'sfew' : 'rafdb';
  const values = r.rows.map((row, order) => ({
    table: row.table,
    label: row.label,
    mean: row.accuracy.mean,
    lo: row.accuracy.mean - (row.accuracy.std ?? 0),
    hi: row.accuracy.mean + (row.accuracy.std ?? 0),
    paper: row.paper?.[paperKey] ?? null,
  }));
  // The table's own order (variants as in the paper, values ascending), not alphabetical; an
  // explicit list, as layers cannot share a sort by field.
  const x = { field: 'label', type: 'nominal', title: null, sort: [...new Set(values.map((v) => v.label))] } as const;
  return {
    title: {
      text: `experiment ${r.kind}: ${r.dataset} test accuracy (%), ${r.seeds.length} seed${r.seeds.length > 1 ? 's' : ''}, ${r.epochs} epochs`,
      subtitle: `bars: ours${r.seeds.length > 1 ? ' (mean, ±1 s.d.)' : ''}; red ticks: the paper's ${paperKey === 'sfew' ? 'SFEW' : 'RAF-DB'} result`,
    },
    data: { values },
    facet: { column: { field: 'table', type: 'nominal', title: null } },
    resolve: { scale: { x: 'independent' } },
    spec: {
      width: 60 * Math.max(...[...new Set(values.map((v) => v.table))].map((t) => values.filter((v) => v.table === t).length)),
      height: 220,
      layer: [
        { mark: { type: 'bar', color: '#4c78a8' }, encoding: { x, y: { field: 'mean', type: 'quantitative', title: 'test accuracy (%)' } } },
        { mark: { type: 'rule', color: 'black' }, encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
        {
          transform: [{ filter: 'datum.paper !== null' }],
          mark: { type: 'tick', color: '#e45756', thickness: 3 },
          encoding: { x, y: { field: 'paper', type: 'quantitative' } },
        },
      ],
    },
  } as TopLevelSpec;
}
