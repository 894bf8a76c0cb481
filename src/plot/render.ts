import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from '../util/atomic.js';

/**
 * One font family for every chart: DejaVu Sans ships with Debian (fonts-dejavu-core, which librsvg
 * pulls in), so vega's text measurement and sharp/librsvg's rendering agree and the PNG has text;
 * the generic `sans-serif` after it covers other systems.
 */
export const CHART_FONT = 'DejaVu Sans, sans-serif';

/** Fonts, background and padding shared by every chart, so figures look alike. */
const CONFIG = {
  font: CHART_FONT,
  background: '#ffffff',
  padding: 8,
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 14 },
} as const;

export interface RenderedChart {
  svg: string;
  png: Buffer;
}

/**
 * The PNG is twice the SVG's size, which keeps text sharp on screens and in papers: sharp's
 * density is in dpi against librsvg's 72, so 144 renders one SVG unit as two pixels.
 */
const PNG_DENSITY = 144;

/**
 * A vega-lite spec as SVG and PNG: vega-lite compiles it to vega, a headless vega View (renderer
 * 'none': no canvas package needed) renders the SVG, sharp/librsvg rasterises it. Deterministic:
 * vega's output depends only on the spec and data.
 */
export async function renderChart(spec: TopLevelSpec): Promise<RenderedChart> {
  const vgSpec = compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none', logLevel: vega.Warn });
  try {
    const svg = await view.toSVG();
    const png = await sharp(Buffer.from(svg), { density: PNG_DENSITY }).png().toBuffer();
    return { svg, png };
  } finally {
    view.finalize();
  }
}

/** Writes `<base>.svg` and `<base>.png`, each atomically; returns both paths. */
export async function writeChart(base: string, spec: TopLevelSpec): Promise<{ svg: string; png: string }> {
  const r = await renderChart(spec);
  writeFileAtomic(`${base}.svg`, r.svg);
  writeFileAtomic(`${base}.png`, r.png);
  return { svg: `${base}.svg`, png: `${base}.png` };
}
