import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { TopLevelSpec } from 'vega-lite';
import type { BackendRequest } from '../../src/engine/backend.js';
import { errors } from '../../src/errors.js';
import type { Variant } from '../../src/model/config.js';
import { writeChart } from '../../src/plot/render.js';
import { writeFileAtomic } from '../../src/util/atomic.js';
import { compiledSibling } from '../../src/util/compiled-path.js';
import { runRanks } from './ranks.js';
import type { ScalingRankConfig, ScalingRankResult } from './scaling-worker.js';

export interface BenchScalingOptions {
  workers: number[];
  backend: BackendRequest;
  variant: Variant;
  width: number;
  size: number;
  /** Images per step per worker (weak scaling: the global batch grows with the workers). */
  batch: number;
  steps: number;
  warmup: number;
  transport: 'tcp' | 'ipc';
  /** Folder for scaling.json and scaling.png. */
  out?: string;
}

export interface ScalingRow {
  workers: number;
  imagesPerSec: number;
  msPerStep: number;
  computeMsPerStep: number;
  allReduceMsPerStep: number;
  /** imagesPerSec / (workers × imagesPerSec of 1 worker). */
  efficiency: number;
}

export interface BenchScalingResult {
  backend: string;
  variant: Variant;
  width: number;
  size: number;
  batch: number;
  rows: ScalingRow[];
}

/**
 * Training throughput of the real model per worker count: N processes, each running the real step
 * on its own fixed batch with gradients all-reduced over the ring, timed after warm-up by the
 * slowest rank (a synchronous step is as fast as it is).
 */
export async function benchScaling(o: BenchScalingOptions): Promise<BenchScalingResult> {
  if (!o.workers.length || o.workers.some((n) => !Number.isInteger(n) || n < 1)) {
    throw errors.invalidArgument('--workers', `"${o.workers.join(',')}"`, 'pass a comma-separated list of positive integers, e.g. 1,2,4');
  }
  const entry = compiledSibling(import.meta.url, 'scaling-worker.js');
  const rows: ScalingRow[] = [];
  let backend = '';
  for (const n of o.workers) {
    const { results } = await runRanks<ScalingRankConfig, ScalingRankResult>(
      entry,
      n,
      (rank, coordinator) => {
        const { workers: _all, out: _out, ...shared } = o;
        return { ...shared, rank, worldSize: n, coordinator };
      },
      30 * 60_000,
    );
    backend = results[0].backend;
    const slowest = results.reduce((a, b) => (b.seconds > a.seconds ? b : a));
    rows.push({
      workers: n,
      imagesPerSec: (n * o.batch * o.steps) / slowest.seconds,
      msPerStep: (slowest.seconds * 1000) / o.steps,
      computeMsPerStep: slowest.computeMs / o.steps,
      allReduceMsPerStep: slowest.reduceMs / o.steps,
      efficiency: 0,
    });
  }
  const one = rows.find((r) => r.workers === 1)?.imagesPerSec ?? rows[0].imagesPerSec / rows[0].workers;
  for (const r of rows) r.efficiency = r.imagesPerSec / (r.workers * one);
  const result: BenchScalingResult = { backend, variant: o.variant, width: o.width, size: o.size, batch: o.batch, rows };
  if (o.out) {
    mkdirSync(o.out, { recursive: true });
    writeFileAtomic(join(o.out, 'scaling.json'), JSON.stringify(result, null, 2) + '\n');
    await writeChart(join(o.out, 'scaling'), scalingSpec(result));
  }
  return result;
}

/** Throughput against workers, each point labelled with its img/s and efficiency, and the ideal (linear) line for reference. */
export function scalingSpec(r: BenchScalingResult): TopLevelSpec {
  const one = r.rows[0].imagesPerSec / (r.rows[0].workers * r.rows[0].efficiency || 1);
  const measured = r.rows.map((p) => ({ workers: p.workers, imagesPerSec: p.imagesPerSec, label: `${p.imagesPerSec.toFixed(1)} (${Math.round(p.efficiency * 100)}%)` }));
  const linear = r.rows.map((p) => ({ workers: p.workers, imagesPerSec: one * p.workers }));
  const x = { field: 'workers', type: 'quantitative', title: 'workers', axis: { values: r.rows.map((p) => p.workers), format: 'd' } } as const;
  const y = { field: 'imagesPerSec', type: 'quantitative', title: 'training img/s' } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `SLFER ${r.variant} w${r.width} ${r.size}px, batch ${r.batch}/worker on ${r.backend}`,
    width: 400,
    height: 260,
    layer: [
      { data: { name: 'linear', values: linear }, mark: { type: 'line', strokeDash: [5, 4], color: '#999999' }, encoding: { x, y } },
      { data: { name: 'measured', values: measured }, mark: { type: 'line', point: true, color: '#1f6fd1' }, encoding: { x, y } },
      { data: { name: 'labels', values: measured }, mark: { type: 'text', dy: -12, fontSize: 11 }, encoding: { x, y, text: { field: 'label' } } },
    ],
  };
}
