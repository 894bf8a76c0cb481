import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plotRun, type TsneFile } from '../../src/plot/plot-run.js';
import { train } from '../../src/train/trainer.js';
import { runCli } from '../helpers/cli.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';

// Needs the built CLI: `npx tsc -p tsconfig.json` first.
let data: Awaited<ReturnType<typeof syntheticDataset>>;
let runDir: string;
const TEST_IMAGES = 21;

beforeAll(async () => {
  data = await syntheticDataset({ train: 32, test: TEST_IMAGES, size: 40 });
  runDir = (await train({ config: tinyConfig(data.root, 40, { epochs: 2 }), out: join(data.base, 'run') })).runDir;
});
afterAll(() => data.cleanup());

const symbols = (svg: string) => [...svg.matchAll(/<g class="mark-symbol role-mark[^"]*"[^>]*>(.*?)<\/g>/gs)].reduce((n, m) => n + (m[1].match(/<path /g)?.length ?? 0), 0);

describe('slfer-dist plot', () => {
  it('a run ends with its training curves, and `plot RUN` draws them again', async () => {
    // finishRun wrote them: proposed has total, ECT, ST and CT losses and the accuracy, 2 epochs each.
    const atEnd = readFileSync(join(runDir, 'curves.svg'), 'utf8');
    expect(symbols(atEnd)).toBe(5 * 2);
    rmSync(join(runDir, 'curves.svg'));
    rmSync(join(runDir, 'curves.png'));
    const r = runCli(['plot', runDir]);
    expect(r.stderr).not.toContain('error');
    expect(r.status).toBe(0);
    const svg = readFileSync(join(runDir, 'curves.svg'), 'utf8');
    for (const t of ['training loss', 'test accuracy (%)', 'segmentation (ST)']) expect(svg).toContain(`>${t}<`);
    // The same figure as the run's end drew, title included.
    expect(svg).toBe(atEnd);
    expect((await sharp(readFileSync(join(runDir, 'curves.png'))).metadata()).format).toBe('png');
  });

  it('`plot RUN --tsne` draws one point per test image, and the same seed gives the same coordinates', () => {
    const args = ['plot', runDir, '--tsne', '--seed', '3', '--iterations', '100', '--backend', 'wasm'];
    const first = runCli(args);
    expect(first.stderr).not.toContain('error');
    expect(first.status).toBe(0);
    const a = JSON.parse(readFileSync(join(runDir, 'tsne.json'), 'utf8')) as TsneFile;
    expect(a.points).toHaveLength(TEST_IMAGES);
    expect(a.classNames).toHaveLength(7);
    // The default perplexity 30 is capped below a third of the 21 points.
    expect(a.perplexity).toBeCloseTo((TEST_IMAGES - 1) / 3);
    for (const p of a.points) expect(Number.isFinite(p.x) && Number.isFinite(p.y)).toBe(true);
    expect(symbols(readFileSync(join(runDir, 'tsne.svg'), 'utf8'))).toBe(TEST_IMAGES);
    expect(existsSync(join(runDir, 'tsne.png'))).toBe(true);

    // --data naming the same dataset folder changes nothing.
    expect(runCli([...args, '--data', data.root]).status).toBe(0);
    const b = JSON.parse(readFileSync(join(runDir, 'tsne.json'), 'utf8')) as TsneFile;
    expect(b.points).toEqual(a.points);
  });

  it('a folder that is not a run is a typed error naming it', () => {
    const missing = join(data.base, 'no-such-run');
    const r = runCli(['plot', missing]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`error SLFER_RUN_FOLDER_INVALID: ${missing} is not a usable run folder: no such folder`);
    expect(r.stderr).toContain('→');
    // The dataset folder exists but holds no metrics.jsonl nor checkpoint.
    const notRun = runCli(['plot', data.root, '--tsne']);
    expect([notRun.status, notRun.stderr.includes(`SLFER_RUN_FOLDER_INVALID: ${data.root} is not a usable run folder: it holds no checkpoint`)]).toEqual([1, true]);
  });

  it('a damaged metrics.jsonl is a typed error naming the folder and the line', async () => {
    const dir = join(data.base, 'damaged');
    mkdirSync(dir);
    writeFileSync(join(dir, 'metrics.jsonl'), `${readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').split('\n')[0]}\n{"epoch": 2, "trainL`);
    await expect(plotRun({ run: dir })).rejects.toMatchObject({ code: 'SLFER_RUN_FOLDER_INVALID', message: expect.stringContaining(`${dir} is not a usable run folder: metrics.jsonl line 2`) });
    // An empty folder has nothing to draw.
    await expect(plotRun({ run: data.base })).rejects.toMatchObject({ code: 'SLFER_RUN_FOLDER_INVALID', message: expect.stringContaining('holds no metrics.jsonl') });
  });

  it('--perplexity without --tsne is refused', () => {
    const r = runCli(['plot', runDir, '--perplexity', '10']);
    expect([r.status, r.stderr.includes('error SLFER_INVALID_ARGUMENT: --perplexity')]).toEqual([1, true]);
  });
});
