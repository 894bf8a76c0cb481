import sharp from 'sharp';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { BackendRequest } from '../../src/engine/backend.js';
import { errors } from '../../src/errors.js';
import type { Variant } from '../../src/model/config.js';
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
    const svg = scalingSvg(result);
    writeFileAtomic(join(o.out, 'scaling.svg'), svg);
    writeFileAtomic(join(o.out, 'scaling.png'), await sharp(Buffer.from(svg)).png().toBuffer());
  }
  return result;
}

/** Throughput against workers, with the ideal (linear) line for reference. */
export function scalingSvg(r: BenchScalingResult): string {
  const W = 520;
  const H = 360;
  const L = 70;
  const B = 50;
  const maxN = Math.max(...r.rows.map((x) => x.workers));
  const one = r.rows[0].imagesPerSec / (r.rows[0].workers * r.rows[0].efficiency || 1);
  const maxY = Math.max(...r.rows.map((x) => x.imagesPerSec), one * maxN) * 1.1;
  const x = (n: number) => L + ((W - L - 60) * (n - 1)) / Math.max(1, maxN - 1);
  const y = (v: number) => H - B - ((H - B - 40) * v) / maxY;
  const pts = r.rows.map((p) => `${x(p.workers)},${y(p.imagesPerSec)}`).join(' ');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" font-size="14" text-anchor="middle">SLFER ${r.variant} w${r.width} ${r.size}px, batch ${r.batch}/worker on ${r.backend}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - 20}" y2="${H - B}" stroke="#000"/><line x1="${L}" y1="${H - B}" x2="${L}" y2="30" stroke="#000"/>`,
    `<text x="${(W + L) / 2}" y="${H - 12}" font-size="12" text-anchor="middle">workers</text>`,
    `<text x="16" y="${H / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">training img/s</text>`,
    `<line x1="${x(1)}" y1="${y(one)}" x2="${x(maxN)}" y2="${y(one * maxN)}" stroke="#999" stroke-dasharray="5,4"/>`,
    `<polyline points="${pts}" fill="none" stroke="#1f6fd1" stroke-width="2"/>`,
    ...r.rows.map(
      (p) =>
        `<circle cx="${x(p.workers)}" cy="${y(p.imagesPerSec)}" r="4" fill="#1f6fd1"/><text x="${x(p.workers)}" y="${y(p.imagesPerSec) - 10}" font-size="11" text-anchor="middle">${p.imagesPerSec.toFixed(1)} (${Math.round(p.efficiency * 100)}%)</text><text x="${x(p.workers)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${p.workers}</text>`,
    ),
    `<text x="${W - 24}" y="${y(one * maxN) - 6}" font-size="11" text-anchor="end" fill="#777">linear</text>`,
    '</svg>',
  ];
  return parts.join('\n');
}
