/**
 * What an experiment trains: one row of a table per setting, each trained once per seed as a
 * normal run folder under the experiment folder. Rows differ in one thing only (the variant, a loss
 * weight, n), so data, schedule and seeds are identical across a table.
 */
import type { ConfigInput } from '../config.js';
import { errors } from '../errors.js';
import { VARIANTS, type Variant } from '../model/config.js';
import { PAPER_LAMBDAS, PAPER_TOPN, TABLE1, TABLE3_LAMBDA1, TABLE3_LAMBDA2, type PaperAccuracy } from './paper-results.js';

export const EXPERIMENTS = ['table1', 'lambda', 'topn'] as const;
export type ExperimentKind = (typeof EXPERIMENTS)[number];

export interface Row {
  /** The table this row belongs to (Table 3 has two). */
  table: string;
  /** What the row is called in the table: the variant, the λ or n value. */
  label: string;
  /** Folder name under the experiment folder (one subfolder per seed). */
  dir: string;
  /** What this row sets on top of the experiment's config. */
  config: ConfigInput;
  paper?: PaperAccuracy;
}

export interface PlanOptions {
  lambda1?: number[];
  lambda2?: number[];
  n?: number[];
}

const key = (x: number) => String(x);

export function planRows(kind: ExperimentKind, o: PlanOptions = {}): Row[] {
  switch (kind) {
    case 'table1':
      return VARIANTS.map((v: Variant) => ({ table: 'Table 1: auxiliary tasks', label: v, dir: v, config: { model: { variant: v } }, paper: TABLE1[v] }));
    case 'lambda': {
      const l1 = checkValues(o.lambda1 ?? PAPER_LAMBDAS, '--lambda1', (x) => x >= 0, 'non-negative numbers');
      const l2 = checkValues(o.lambda2 ?? PAPER_LAMBDAS, '--lambda2', (x) => x >= 0, 'non-negative numbers');
      // λ1 = λ2 = 0.5 appears in both halves of Table 3: one run serves both rows (same folder).
      const row = (table: string, label: string, ls: number, lc: number, paper?: PaperAccuracy): Row => ({
        table,
        label,
        dir: `lambda1-${key(ls)}_lambda2-${key(lc)}`,
        config: { model: { variant: 'proposed' }, loss: { lambdaSeg: ls, lambdaCls: lc } },
        paper,
      });
      return [
        ...l1.map((v) => row('Table 3 (a): λ1 (ST) with λ2 = 0.5', key(v), v, 0.5, TABLE3_LAMBDA1[key(v)])),
        ...l2.map((v) => row('Table 3 (b): λ2 (CT) with λ1 = 0.5', key(v), 0.5, v, TABLE3_LAMBDA2[key(v)])),
      ];
    }
    case 'topn': {
      const ns = checkValues(o.n ?? PAPER_TOPN, '--n', (x) => Number.isInteger(x) && x >= 1 && x <= 8, 'whole numbers 1..8 (the parsing classes besides background)');
      return ns.map((n) => ({ table: 'Fig. 3: dominant components n', label: String(n), dir: `n-${n}`, config: { model: { variant: 'proposed' }, loss: { topN: n } } }));
    }
  }
}

function checkValues(values: number[], flag: string, ok: (x: number) => boolean, what: string): number[] {
  if (values.length === 0) throw errors.invalidArgument(flag, 'lists no values', `give a comma-separated list of ${what}`);
  const bad = values.find((x) => !Number.isFinite(x) || !ok(x));
  if (bad !== undefined) throw errors.invalidArgument(flag, `${bad} is not allowed`, `give ${what}`);
  return [...new Set(values)];
}
