import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planRows } from '../../src/experiment/plan.js';
import type { ExperimentResults } from '../../src/experiment/results.js';
import { runExperiment } from '../../src/experiment/run-experiment.js';
import { runCli } from '../helpers/cli.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';
import { rejected, thrown } from '../helpers/thrown.js';

let data: Awaited<ReturnType<typeof syntheticDataset>>;
beforeAll(async () => {
  data = await syntheticDataset({ train: 24, test: 8, size: 32 });
});
afterAll(() => data.cleanup());

const config = () => tinyConfig(data.root, 32, { epochs: 1, batchSize: 4 });

describe('slfer-dist experiment', () => {
  it('table1 from the CLI: the five variants, twice each (--seeds 2), as run folders; results.md with mean ± std beside the paper; a second call keeps every finished run and continues a half-finished one', () => {
    const file = join(data.base, 'table1.json');
    writeFileSync(file, JSON.stringify(config()));
    const out = join(data.base, 'table1');
    const first = runCli(['experiment', 'table1', '-c', file, '--seeds', '2', '--out', out]);
    expect(first.status, first.stderr).toBe(0);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as ExperimentResults;
    expect(results.rows.map((r) => r.label)).toEqual(['baseline', 'ct', 'st', 'ct_st', 'proposed']);
    expect(results.seeds).toEqual([11, 12]);
    for (const r of results.rows) {
      expect(r.runs).toHaveLength(2);
      expect(r.accuracy.std).toBeGreaterThanOrEqual(0);
      for (const seed of [11, 12]) expect(existsSync(join(out, r.label, `seed-${seed}`, 'report.json'))).toBe(true);
    }
    const md = readFileSync(join(out, 'results.md'), 'utf8');
    expect(md).toContain('| variant | ours: accuracy | ours: mean class accuracy | paper: RAF-DB | paper: SFEW |');
    expect(md).toMatch(/\| proposed \| \d+\.\d\d ± \d+\.\d\d \| \d+\.\d\d ± \d+\.\d\d \| 88\.33 \| 59\.86 \|/);
    expect(md).toMatch(/\| baseline \| .* \| 86\.93 \| 52\.98 \|/);
    expect(first.stdout).toContain('# Experiment table1');
    // The bar chart: a bar per variant, the paper's RAF-DB value as a tick.
    const svg = readFileSync(join(out, 'results.svg'), 'utf8');
    for (const v of ['baseline', 'ct_st', 'proposed']) expect(svg).toContain(`>${v}<`);
    expect(svg).toContain('test accuracy (%)');
    expect(existsSync(join(out, 'results.png'))).toBe(true);

    // A half-finished run: its checkpoint stays, its report goes. The rest are kept untouched.
    const kept = join(out, 'ct', 'seed-11', 'report.json');
    const before = statSync(kept).mtimeMs;
    rmSync(join(out, 'st', 'seed-12', 'report.json'));
    const second = runCli(['experiment', 'table1', '-c', file, '--seeds', '2', '--out', out]);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr.match(/finished before, kept/g)).toHaveLength(9);
    expect(second.stderr).toMatch(/st, seed 12: resuming from its checkpoint/);
    expect(statSync(kept).mtimeMs).toBe(before);
    expect(existsSync(join(out, 'st', 'seed-12', 'report.json'))).toBe(true);

    // Another config in the same folder would mix two experiments: refused.
    const other = runCli(['experiment', 'table1', '-c', file, '--seeds', '2', '--out', out, '--lr', '0.01']);
    expect(other.status).toBe(1);
    expect(other.stderr).toContain('holds experiment "table1" with another config');
  }, 240_000);

  it('lambda: the two halves of Table 3 share their λ1 = λ2 = 0.5 run; topn trains one run per n', async () => {
    const out = join(data.base, 'lambda');
    const trained: string[] = [];
    const r = await runExperiment({ kind: 'lambda', config: config(), out, plan: { lambda1: [0, 0.5], lambda2: [0.5, 1] }, events: { run: (x) => x.status !== 'kept' && trained.push(x.dir) } });
    expect(r.rows.map((x) => [x.table.slice(0, 11), x.label])).toEqual([
      ['Table 3 (a)', '0'],
      ['Table 3 (a)', '0.5'],
      ['Table 3 (b)', '0.5'],
      ['Table 3 (b)', '1'],
    ]);
    expect(trained.map((d) => d.slice(out.length + 1))).toEqual(['lambda1-0_lambda2-0.5/seed-11', 'lambda1-0.5_lambda2-0.5/seed-11', 'lambda1-0.5_lambda2-1/seed-11']);
    expect(r.rows[1].accuracy).toEqual(r.rows[2].accuracy);
    expect(JSON.parse(readFileSync(join(out, 'lambda1-0_lambda2-0.5', 'seed-11', 'config.json'), 'utf8'))).toMatchObject({ loss: { lambdaSeg: 0, lambdaCls: 0.5 }, model: { variant: 'proposed' } });
    expect(r.rows[0].paper).toEqual({ rafdb: 87.54, sfew: 57.56 });

    const t = await runExperiment({ kind: 'topn', config: config(), out: join(data.base, 'topn'), plan: { n: [2, 4] } });
    expect(t.rows.map((x) => x.label)).toEqual(['2', '4']);
    expect(JSON.parse(readFileSync(join(data.base, 'topn', 'n-2', 'seed-11', 'config.json'), 'utf8'))).toMatchObject({ loss: { topN: 2 } });
    expect(readFileSync(join(data.base, 'topn', 'results.md'), 'utf8')).toContain('Fig. 3 is a plot without printed values');
  }, 180_000);

  it('--launch trains each run with launch and its workers', async () => {
    const out = join(data.base, 'launched');
    await runExperiment({ kind: 'topn', config: config(), out, plan: { n: [4] }, launch: { workers: 2 } });
    const metrics = readFileSync(join(out, 'n-4', 'seed-11', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { workers: number });
    expect(metrics.map((m) => m.workers)).toEqual([2]);
    expect(existsSync(join(out, 'n-4', 'seed-11', 'timings.json'))).toBe(true);
  }, 120_000);

  it('names what is wrong with its arguments', async () => {
    expect(thrown(() => planRows('topn', { n: [0] })).message).toContain('--n: 0 is not allowed');
    expect(thrown(() => planRows('lambda', { lambda1: [-1] })).message).toContain('--lambda1: -1 is not allowed');
    expect((await rejected(runExperiment({ kind: 'table1', seeds: 0 }))).message).toContain('--seeds');
    const kind = runCli(['experiment', 'table2']);
    expect(kind.status).toBe(1);
    expect(kind.stderr).toContain('"table2" is not one');
    const variant = runCli(['experiment', 'table1', '--variant', 'ct']);
    expect(variant.stderr).toContain('--variant: does not apply to an experiment');
    const list = runCli(['experiment', 'lambda', '--lambda1', '0,,1']);
    expect(list.stderr).toContain('--lambda1 must be comma-separated numbers');
  }, 60_000);
});
