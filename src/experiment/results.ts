import { cpus } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { Report } from '../train/run-files.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { PaperAccuracy } from './paper-results.js';
import type { ExperimentKind, Row } from './plan.js';

export interface RowResult {
  table: string;
  label: string;
  dir: string;
  runs: { seed: number; accuracy: number; meanClassAccuracy: number; elapsedSeconds: number }[];
  /** Test accuracy (%) over the seeds: mean and sample standard deviation (undefined for one seed). */
  accuracy: { mean: number; std?: number };
  meanClassAccuracy: { mean: number; std?: number };
  paper?: PaperAccuracy;
}

export interface ExperimentResults {
  kind: ExperimentKind;
  dataset: string;
  seeds: number[];
  epochs: number;
  rows: RowResult[];
  /** This invocation's training time (runs kept from before cost nothing). */
  elapsedSeconds: number;
  /** Sum of every run's own training time, as its report says. */
  trainingSeconds: number;
  machine: string;
}

function meanStd(xs: number[]): { mean: number; std?: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length < 2) return { mean };
  return { mean, std: Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) };
}

export function summarise(kind: ExperimentKind, rows: Row[], seeds: number, base: Config, report: (row: Row, seed: number) => Report, elapsedSeconds: number): ExperimentResults {
  const seedList = Array.from({ length: seeds }, (_, s) => base.train.seed + s);
  const out = rows.map((row): RowResult => {
    const runs = seedList.map((seed) => {
      const r = report(row, seed);
      return { seed, accuracy: r.accuracy * 100, meanClassAccuracy: r.meanClassAccuracy * 100, elapsedSeconds: r.elapsedSeconds };
    });
    return {
      table: row.table,
      label: row.label,
      dir: row.dir,
      runs,
      accuracy: meanStd(runs.map((r) => r.accuracy)),
      meanClassAccuracy: meanStd(runs.map((r) => r.meanClassAccuracy)),
      paper: row.paper,
    };
  });
  // Rows two tables share are one run: count its time once.
  const unique = new Map(out.flatMap((r) => r.runs.map((x) => [`${r.dir}/${x.seed}`, x.elapsedSeconds] as const)));
  return {
    kind,
    dataset: base.data.dataset,
    seeds: seedList,
    epochs: base.train.epochs,
    rows: out,
    elapsedSeconds,
    trainingSeconds: [...unique.values()].reduce((a, b) => a + b, 0),
    machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores`,
  };
}

const pct = (m: { mean: number; std?: number }) => (m.std === undefined ? m.mean.toFixed(2) : `${m.mean.toFixed(2)} ± ${m.std.toFixed(2)}`);
const HEADER: Record<ExperimentKind, string> = { table1: 'variant', lambda: 'value', topn: 'n' };

/** results.md: one table per paper table, ours beside the paper's numbers. */
export function formatResults(r: ExperimentResults): string {
  const lines = [
    `# Experiment ${r.kind}`,
    '',
    `${r.dataset} test accuracy (%), ${r.epochs} epochs, ${r.seeds.length === 1 ? `seed ${r.seeds[0]}` : `mean ± standard deviation over seeds ${r.seeds.join(', ')}`}. ` +
      `The paper's columns are its RAF-DB and SFEW results (${r.kind === 'topn' ? 'Fig. 3 is a plot without printed values' : 'one run each'}).`,
    '',
  ];
  for (const table of [...new Set(r.rows.map((x) => x.table))]) {
    lines.push(`## ${table}`, '', `| ${HEADER[r.kind]} | ours: accuracy | ours: mean class accuracy | paper: RAF-DB | paper: SFEW |`, '| --- | --- | --- | --- | --- |');
    for (const row of r.rows.filter((x) => x.table === table)) {
      lines.push(`| ${row.label} | ${pct(row.accuracy)} | ${pct(row.meanClassAccuracy)} | ${row.paper?.rafdb.toFixed(2) ?? '—'} | ${row.paper?.sfew.toFixed(2) ?? '—'} |`);
    }
    lines.push('');
  }
  lines.push(`Training time: ${(r.trainingSeconds / 60).toFixed(1)} min over ${new Set(r.rows.flatMap((x) => x.runs.map((y) => `${x.dir}/${y.seed}`))).size} runs, on ${r.machine}.`, '');
  return lines.join('\n');
}

export function writeResults(out: string, r: ExperimentResults): void {
  writeFileAtomic(join(out, 'results.json'), JSON.stringify(r, null, 1) + '\n');
  writeFileAtomic(join(out, 'results.md'), formatResults(r));
}
