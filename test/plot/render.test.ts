import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { scalingSpec } from '../../cluster/bench/scaling.js';
import { curvesSpec } from '../../src/plot/curves.js';
import { confusionMatrixSpec } from '../../src/train/confusion-plot.js';
import type { EvalResult } from '../../src/train/metrics.js';
import { renderChart, writeChart } from '../../src/plot/render.js';
import type { EpochMetrics } from '../../src/train/run-files.js';

const epoch = (e: number, over: Partial<EpochMetrics['trainLossParts']> = {}): EpochMetrics => ({
  epoch: e,
  trainLoss: 3 - e * 0.5,
  trainLossParts: { expression: 1.9 - e * 0.2, ...over },
  testAccuracy: 0.2 + e * 0.1,
  meanClassAccuracy: 0.2,
  lr: 1e-4,
  imagesPerSec: 100,
  epochSeconds: 1,
  dataWaitSeconds: 0,
  backend: 'cpu',
  skipped: 0,
  workers: 1,
  computeSeconds: 1,
  allReduceSeconds: 0,
  slowestRank: 0,
});

/** The symbols (points) of one vega mark group, by its role in the SVG. */
function symbols(svg: string): number {
  return [...svg.matchAll(/<g class="mark-symbol role-mark[^"]*"[^>]*>(.*?)<\/g>/gs)].reduce((n, m) => n + (m[1].match(/<path /g)?.length ?? 0), 0);
}

describe('renderChart', () => {
  it('gives an SVG with the axis titles and legend labels, and a PNG of the SVG size at 2x', async () => {
    const r = await renderChart({
      width: 200,
      height: 120,
      data: { values: [{ a: 1, b: 2, c: 'alpha' }, { a: 2, b: 3, c: 'beta' }] },
      mark: 'point',
      encoding: { x: { field: 'a', type: 'quantitative', title: 'X title' }, y: { field: 'b', type: 'quantitative', title: 'Y title' }, color: { field: 'c', type: 'nominal', title: 'kinds' } },
    });
    expect(r.svg.startsWith('<svg')).toBe(true);
    for (const t of ['X title', 'Y title', 'kinds', 'alpha', 'beta']) expect(r.svg).toContain(`>${t}<`);
    expect(r.svg).toContain('DejaVu Sans');
    const w = Number(/<svg[^>]* width="(\d+)"/.exec(r.svg)![1]);
    const h = Number(/<svg[^>]* height="(\d+)"/.exec(r.svg)![1]);
    const meta = await sharp(r.png).metadata();
    expect(meta.format).toBe('png');
    expect([meta.width, meta.height]).toEqual([w * 2, h * 2]);
    // Same spec, same bytes.
    const again = await renderChart({
      width: 200,
      height: 120,
      data: { values: [{ a: 1, b: 2, c: 'alpha' }, { a: 2, b: 3, c: 'beta' }] },
      mark: 'point',
      encoding: { x: { field: 'a', type: 'quantitative', title: 'X title' }, y: { field: 'b', type: 'quantitative', title: 'Y title' }, color: { field: 'c', type: 'nominal', title: 'kinds' } },
    });
    expect(again.svg).toBe(r.svg);
  });

  it('draws text into the PNG (the font is found by librsvg)', async () => {
    const blank = await renderChart({ width: 200, height: 60, data: { values: [{ t: '' }] }, mark: { type: 'text', fontSize: 30 }, encoding: { text: { field: 't' } } });
    const text = await renderChart({ width: 200, height: 60, data: { values: [{ t: 'Happiness' }] }, mark: { type: 'text', fontSize: 30 }, encoding: { text: { field: 't' } } });
    const dark = async (png: Buffer) => {
      const { data } = await sharp(png).greyscale().raw().toBuffer({ resolveWithObject: true });
      return data.reduce((n, v) => n + (v < 128 ? 1 : 0), 0);
    };
    expect(await dark(text.png)).toBeGreaterThan((await dark(blank.png)) + 200);
  });
});

describe('training curves', () => {
  it('has one point per epoch per series, only the loss terms the variant has', async () => {
    const proposed = [1, 2, 3].map((e) => epoch(e, { segmentation: 0.5, components: 0.4 }));
    const r = await renderChart(curvesSpec(proposed, 'proposed'));
    // total, expression, segmentation, components and accuracy: 5 series of 3 epochs.
    expect(symbols(r.svg)).toBe(5 * 3);
    for (const t of ['training loss', 'test accuracy (%)', 'epoch', 'segmentation (ST)', 'components (CT)']) expect(r.svg).toContain(`>${t}<`);

    const baseline = [1, 2].map((e) => epoch(e));
    const b = await renderChart(curvesSpec(baseline, 'baseline'));
    expect(symbols(b.svg)).toBe(3 * 2);
    expect(b.svg).not.toContain('segmentation (ST)');
  });

  it('writes <base>.svg and <base>.png', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'slfer-curves-'));
    const f = await writeChart(join(dir, 'curves'), curvesSpec([epoch(1)], 't'));
    expect(readFileSync(f.svg, 'utf8')).toContain('<svg');
    expect(readFileSync(f.png).subarray(1, 4).toString()).toBe('PNG');
  });
});

describe('confusion matrix', () => {
  it('is a heatmap with every count, both axes in class order', async () => {
    const names = ['Surprise', 'Fear', 'Disgust'];
    const m = [
      [5, 1, 0],
      [2, 7, 1],
      [0, 0, 9],
    ];
    const r = await renderChart(confusionMatrixSpec({ classNames: names, confusionMatrix: m } as unknown as EvalResult, 'cm'));
    // One cell per (true, predicted) pair, and its count written on it.
    const rects = /<g class="mark-rect role-mark[^"]*"[^>]*>(.*?)<\/g>/s.exec(r.svg)![1].match(/<path /g)!.length;
    expect(rects).toBe(9);
    const texts = [.../<g class="mark-text role-mark[^"]*"[^>]*>(.*?)<\/g>/s.exec(r.svg)![1].matchAll(/>(\d+)<\/text>/g)].map((x) => Number(x[1]));
    expect(texts.sort((a, b) => a - b)).toEqual(m.flat().sort((a, b) => a - b));
    for (const t of ['predicted', 'true', ...names]) expect(r.svg).toContain(`>${t}<`);
  });
});

describe('scaling plot', () => {
  it('draws the measured img/s per worker count, each labelled, and the linear line', async () => {
    const row = (workers: number, imagesPerSec: number, efficiency: number) => ({ workers, imagesPerSec, msPerStep: 1, computeMsPerStep: 1, allReduceMsPerStep: 0, efficiency });
    const r = await renderChart(scalingSpec({ backend: 'wasm', variant: 'proposed', width: 0.125, size: 64, batch: 16, rows: [row(1, 116.5, 1), row(2, 163.3, 0.7), row(4, 150.6, 0.32)] }));
    expect(symbols(r.svg)).toBe(3);
    for (const t of ['116.5 (100%)', '163.3 (70%)', '150.6 (32%)', 'workers', 'training img/s']) expect(r.svg).toContain(`>${t}<`);
    expect(r.svg.match(/stroke-dasharray="5,4"/g)).toHaveLength(1);
  });
});
