import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { launch, type LaunchEvents } from '../../cluster/coordinator.js';
import { mergeConfig, resolveConfig, type ConfigInput } from '../config.js';
import { errors } from '../errors.js';
import { RUN_FILES, type Report } from '../train/run-files.js';
import { train, type TrainEvents } from '../train/trainer.js';
import { writeFileAtomic } from '../util/atomic.js';
import { planRows, type ExperimentKind, type PlanOptions, type Row } from './plan.js';
import { writeChart } from '../plot/render.js';
import { resultsSpec } from './results-chart.js';
import { summarise, writeResults, type ExperimentResults } from './results.js';

export interface ExperimentOptions {
  kind: ExperimentKind;
  /** The config every run starts from (each row sets one thing on top). */
  config?: ConfigInput;
  /** The experiment folder (default runs/experiment-<kind>); running again continues it. */
  out?: string;
  /** Runs per row, seeds config.train.seed, +1, ... (default 1). */
  seeds?: number;
  plan?: PlanOptions;
  /** Train each run with `launch` (its workers or GPUs) instead of in this process. */
  launch?: { workers?: number; gpus?: number };
  signal?: AbortSignal;
  events?: ExperimentEvents;
}

export interface ExperimentEvents extends TrainEvents, LaunchEvents {
  /** Before each run: kept (finished before), resumed (from its checkpoint) or started. */
  run?(r: { row: Row; seed: number; dir: string; status: 'kept' | 'resumed' | 'started'; index: number; total: number }): void;
}

/** What experiment.json records, so that continuing an experiment cannot mix two configs. */
interface Manifest {
  kind: ExperimentKind;
  config: unknown;
}

/**
 * `slfer-dist experiment`: trains every row of a paper table once per seed, as normal run folders
 * under one experiment folder, then writes results.json and results.md (ours beside the paper's).
 * Resumable: a finished run (its report.json) is kept, a half-finished one continues from its
 * checkpoint (--resume auto), a missing one starts.
 */
export async function runExperiment(o: ExperimentOptions): Promise<ExperimentResults> {
  const log = o.events?.log ?? (() => {});
  const seeds = o.seeds ?? 1;
  if (!Number.isInteger(seeds) || seeds < 1) throw errors.invalidArgument('--seeds', `${seeds}`, 'give a whole number of runs per row, 1 or more');
  const out = resolve(o.out ?? join('runs', `experiment-${o.kind}`));
  const base = resolveConfig(o.config ?? {}, 'config');
  const rows = planRows(o.kind, o.plan);
  checkManifest(out, { kind: o.kind, config: base });

  const t0 = Date.now();
  const jobs = rows.flatMap((row) => Array.from({ length: seeds }, (_, s) => ({ row, seed: base.train.seed + s })));
  // A row that two tables share (Table 3's λ1 = λ2 = 0.5) is one folder: train it once.
  const unique = [...new Map(jobs.map((j) => [join(j.row.dir, `seed-${j.seed}`), j])).values()];
  for (const [index, job] of unique.entries()) {
    if (o.signal?.aborted) throw errors.aborted(`experiment ${o.kind}`);
    const dir = join(out, job.row.dir, `seed-${job.seed}`);
    const status = existsSync(join(dir, RUN_FILES.report)) ? 'kept' : existsSync(join(dir, RUN_FILES.checkpoints, 'latest.json')) ? 'resumed' : 'started';
    o.events?.run?.({ row: job.row, seed: job.seed, dir, status, index, total: unique.length });
    if (status === 'kept') continue;
    const config = mergeConfig(mergeConfig(o.config ?? {}, job.row.config), { train: { seed: job.seed } }) as ConfigInput;
    const run = { config, out: dir, resume: 'auto', signal: o.signal, events: o.events };
    if (o.launch) await launch({ ...run, workers: o.launch.workers, gpus: o.launch.gpus });
    else await train(run);
  }
  const results = summarise(o.kind, rows, seeds, base, (row, seed) => readReport(join(out, row.dir, `seed-${seed}`)), (Date.now() - t0) / 1000);
  writeResults(out, results);
  await writeChart(join(out, 'results'), resultsSpec(results));
  log(`wrote ${join(out, 'results.md')}, results.json and results.png/svg`);
  return results;
}

function readReport(dir: string): Report {
  return JSON.parse(readFileSync(join(dir, RUN_FILES.report), 'utf8')) as Report;
}

function checkManifest(out: string, m: Manifest): void {
  const file = join(out, 'experiment.json');
  const text = JSON.stringify(m, null, 1) + '\n';
  if (existsSync(file)) {
    const was = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    if (was.kind !== m.kind || JSON.stringify(was.config) !== JSON.stringify(m.config)) {
      throw errors.invalidArgument(
        'experiment folder',
        `${out} holds experiment "${was.kind}" with another config than this one`,
        'continue it with the same command line (same config and flags), or choose another --out',
      );
    }
    return;
  }
  writeFileAtomic(file, text);
}
