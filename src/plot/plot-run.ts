import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { mergeConfig, resolveConfig } from '../config.js';
import { EXPRESSIONS } from '../data/labels.js';
import { ImagePipeline } from '../data/pipeline.js';
import { selectBackend, type BackendRequest } from '../engine/backend.js';
import { errors, isSlferError } from '../errors.js';
import { resolveCheckpoint } from '../train/checkpoint.js';
import { loadTrainedModel } from '../train/load-model.js';
import { pipelineOptionsOf } from '../train/model-config.js';
import { RUN_FILES, type EpochMetrics } from '../train/run-files.js';
import { prepareData } from '../train/trainer.js';
import { writeFileAtomic } from '../util/atomic.js';
import { ectFeatures } from './ect-features.js';
import { CURVES_BASE, curvesTitle, writeCurves } from './curves.js';
import { writeChart } from './render.js';
import { DEFAULT_TSNE, tsne2d, tsneSpec, TSNE_BASE, type TsneOptions } from './tsne.js';

export interface PlotRunOptions {
  /** A run folder (train's or launch's --out). */
  run: string;
  /** Also the t-SNE of ECT's features of the test split (loads the best checkpoint). */
  tsne?: Partial<TsneOptions>;
  /** The dataset folder, when it is no longer where the run trained on it (same layout). */
  data?: string;
  backend?: BackendRequest;
  log?: (line: string) => void;
}

/** tsne.json: the 2-D points with what they show, so the figure can be redrawn elsewhere. */
export interface TsneFile {
  checkpoint: string;
  /** The perplexity used: --perplexity, capped below a third of the points. */
  perplexity: number;
  seed: number;
  iterations: number;
  classNames: string[];
  points: { id: string; label: number; expression: string; x: number; y: number }[];
}

/** The files `plot` wrote, by what they hold. */
export interface PlotRunResult {
  curves?: { svg: string; png: string };
  tsne?: { svg: string; png: string; json: string; points: number };
}

/** The run's metrics.jsonl, each bad line an error naming the folder (not a bare SyntaxError). */
function readRunMetrics(dir: string): EpochMetrics[] {
  const file = join(dir, RUN_FILES.metrics);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l, i) => [l, i + 1] as const)
    .filter(([l]) => l.trim())
    .map(([l, n]) => {
      try {
        const m = JSON.parse(l) as EpochMetrics;
        if (typeof m.epoch !== 'number' || typeof m.trainLoss !== 'number') throw new Error('no epoch or trainLoss');
        return m;
      } catch (e) {
        throw errors.runFolderInvalid(dir, `${RUN_FILES.metrics} line ${n} is not an epoch's metrics (${(e as Error).message})`);
      }
    });
}

/** A JSON file of the run folder, or undefined when it is absent; unreadable JSON names the folder. */
function readRunJson<T>(dir: string, name: string): T | undefined {
  const file = join(dir, name);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw errors.runFolderInvalid(dir, `${name} is not JSON (${(e as Error).message})`);
  }
}

/** The curves' title as finishRun writes it (report.json's variant and dataset), else what config.json says. */
function runTitle(dir: string): string {
  const report = readRunJson<{ variant?: string; dataset?: string }>(dir, RUN_FILES.report);
  const config = readRunJson<{ model?: { variant?: string }; data?: { dataset?: string } }>(dir, RUN_FILES.config);
  return curvesTitle(report?.variant ?? config?.model?.variant ?? 'SLFER', report?.dataset ?? config?.data?.dataset ?? 'its dataset');
}

/**
 * `slfer-dist plot RUN`: the training curves from metrics.jsonl, and with `tsne` the t-SNE of the
 * test split's ECT features (Fig. 4), into the run folder.
 */
export async function plotRun(o: PlotRunOptions): Promise<PlotRunResult> {
  const log = o.log ?? (() => {});
  const dir = resolve(o.run);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw errors.runFolderInvalid(dir, 'no such folder');
  const metrics = readRunMetrics(dir);
  if (!metrics.length && !o.tsne) throw errors.runFolderInvalid(dir, `it holds no ${RUN_FILES.metrics} (or an empty one), so there are no curves to draw`);
  const result: PlotRunResult = {};
  if (metrics.length) {
    result.curves = await writeCurves(dir, metrics, runTitle(dir));
    log(`training curves: ${join(dir, `${CURVES_BASE}.png`)}`);
  }
  if (o.tsne) result.tsne = await plotTsne(dir, { ...DEFAULT_TSNE, ...o.tsne }, o.data, o.backend, log);
  return result;
}

async function plotTsne(dir: string, t: TsneOptions, data: string | undefined, backend: BackendRequest | undefined, log: (l: string) => void): Promise<NonNullable<PlotRunResult['tsne']>> {
  let checkpoint: string;
  try {
    checkpoint = resolveCheckpoint(dir, 'best');
  } catch (e) {
    if (isSlferError(e) && e.code === 'SLFER_CHECKPOINT_NOT_FOUND') throw errors.runFolderInvalid(dir, 'it holds no checkpoint, which --tsne needs');
    throw e;
  }
  const engine = await selectBackend(backend ?? 'auto');
  log(`engine: ${engine.backend} (${engine.reason})`);
  const { model, config: trained, path } = loadTrainedModel(checkpoint);
  try {
    const config = data ? resolveConfig(mergeConfig(trained, { data: { root: data } }), 'plot config') : trained;
    // As evaluation: the ST and CT heads do not run, so no masks are needed.
    const { splits } = await prepareData({ ...config, model: { ...config.model, variant: 'baseline' } }, log);
    const pipeline = new ImagePipeline(pipelineOptionsOf(config, { withMasks: false }));
    const f = await ectFeatures(model, pipeline, splits.test, config.train.batchSize).finally(() => pipeline.close());
    log(`t-SNE of ${f.rows.length} test images (${f.rows[0]?.length ?? 0}-d ECT features from ${path}), seed ${t.seed}`);
    const { points, perplexity } = tsne2d(f.rows, t);
    const file: TsneFile = {
      checkpoint: path,
      perplexity,
      seed: t.seed,
      iterations: t.iterations,
      classNames: [...EXPRESSIONS],
      points: points.map(([x, y], i) => ({ id: f.ids[i], label: f.labels[i], expression: EXPRESSIONS[f.labels[i]], x, y })),
    };
    const json = join(dir, `${TSNE_BASE}.json`);
    writeFileAtomic(json, JSON.stringify(file, null, 1) + '\n');
    const chart = await writeChart(join(dir, TSNE_BASE), tsneSpec(points, f.labels, `ECT features of the ${splits.name} test split (${config.model.variant})`));
    log(`t-SNE: ${chart.png}`);
    return { ...chart, json, points: points.length };
  } finally {
    model.dispose();
  }
}
