import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'slfer-dist.js');

function cli(args: string[], cwd?: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd, timeout: 240_000, env: { ...process.env, FORCE_COLOR: '0' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let data: Awaited<ReturnType<typeof syntheticDataset>>;
let configFile: string;

beforeAll(async () => {
  data = await syntheticDataset({ train: 42, test: 14, size: 40 });
  configFile = join(data.base, 'tiny.json');
  writeFileSync(configFile, JSON.stringify(tinyConfig(data.root, 40, { epochs: 1 })));
});
afterAll(() => data.cleanup());

describe('slfer-dist CLI', () => {
  it('has --help for every command', () => {
    // Every command the program defines, nested ones too (launch, parse, convert, bench ...).
    const paths = (c: Command, at: string[] = []): string[][] => [at, ...c.commands.flatMap((sub) => paths(sub, [...at, sub.name()]))];
    const all = paths(buildProgram());
    expect(all.map((p) => p.join(' '))).toEqual(expect.arrayContaining(['launch', 'parse', 'convert', 'bench allreduce', 'bench scaling', 'bench train']));
    for (const cmd of all) {
      const r = cli([...cmd, '--help']);
      expect(r.code, cmd.join(' ')).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`Usage: slfer-dist${cmd.length ? ` ${cmd.join(' ')}` : ''}`));
    }
    expect(cli(['train', '--help']).stdout).toContain('--backend <name>');
    expect(cli(['predict', '--help']).stdout).toContain('--checkpoint <dir>');
  });

  it('benchmarks a training step on an engine', () => {
    const r = cli(['bench', 'train', '--backend', 'wasm', '--size', '32', '--width', '0.125', '--batch', '2', '--steps', '1', '--warmup', '0', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const b = JSON.parse(r.stdout) as { backend: string; trainImagesPerSec: number; forwardImagesPerSec: number; parameters: number };
    expect(b.backend).toBe('wasm');
    expect(b.trainImagesPerSec).toBeGreaterThan(0);
    expect(b.forwardImagesPerSec).toBeGreaterThan(0);
    expect(b.parameters).toBeGreaterThan(0);
  });

  it('profiles a training step per kernel with --profile', () => {
    const r = cli(['bench', 'train', '--backend', 'wasm', '--size', '32', '--width', '0.125', '--batch', '2', '--steps', '1', '--warmup', '0', '--profile', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const b = JSON.parse(r.stdout) as { kernels: { kernel: string; ms: number; calls: number }[] };
    const byName = new Map(b.kernels.map((k) => [k.kernel, k]));
    // The proposed variant has 25 convolutions, each run forward once per step (more Conv2D calls
    // on pure wasm, where gradients are forward convolutions too).
    expect(byName.get('Conv2D')?.calls).toBeGreaterThanOrEqual(25);
    expect(b.kernels.reduce((a, k) => a + k.calls, 0)).toBeGreaterThan(500);
    expect(b.kernels.every((k) => k.ms >= 0)).toBe(true);
    expect(b.kernels.map((k) => k.ms)).toEqual([...b.kernels.map((k) => k.ms)].sort((x, y) => y - x));
    const text = cli(['bench', 'train', '--backend', 'wasm', '--size', '32', '--width', '0.125', '--batch', '2', '--steps', '1', '--warmup', '0', '--profile']);
    expect(text.stdout).toMatch(/one profiled step, \d+ ms in kernels:\n\s+\S+\s+[\d.]+ ms/);
  });

  it('generates the synthetic dataset and refuses to overwrite it', () => {
    const out = join(data.base, 'synth-cli');
    const r = cli(['data', 'synth', '--out', out, '--train', '14', '--test', '7', '--size', '40', '--seed', '3']);
    expect(r.code).toBe(0);
    expect(readFileSync(join(out, 'EmoLabel', 'list_patition_label.txt'), 'utf8').trim().split('\n')).toHaveLength(21);
    expect(existsSync(join(out, 'Mask', 'aligned', 'test_0007_aligned.png'))).toBe(true);
    const again = cli(['data', 'synth', '--out', out, '--train', '14', '--test', '7', '--size', '40']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('SLFER_INVALID_ARGUMENT');
  });

  it('trains, evaluates and predicts end to end, with plain progress lines on a pipe', () => {
    const run = join(data.base, 'run');
    const t = cli(['train', '--config', configFile, '--out', run]);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stderr).toContain('engine: wasm');
    expect(t.stderr).toMatch(/epoch 1 step \d+\/\d+ {2}loss/);
    expect(t.stderr).not.toContain('\r');
    expect(t.stdout).toMatch(/test accuracy \d+\.\d\d% .* on 14 rafdb test images/);
    expect(t.stdout).toContain(`report: ${join(run, 'report.json')}`);

    const e = cli(['eval', '--checkpoint', run, '--out', join(data.base, 'eval')]);
    expect(e.code, e.stderr).toBe(0);
    const trained = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8')) as { accuracy: number };
    const evaluated = JSON.parse(readFileSync(join(data.base, 'eval', 'report.json'), 'utf8')) as { accuracy: number };
    expect(evaluated.accuracy).toBe(trained.accuracy);

    const img = join(data.root, 'Image', 'aligned', 'test_0001_aligned.jpg');
    const p = cli(['predict', '--checkpoint', run, '--json', img, img]);
    expect(p.code, p.stderr).toBe(0);
    const preds = JSON.parse(p.stdout) as { image: string; expression: string; probabilities: Record<string, number> }[];
    expect(preds).toHaveLength(2);
    expect(preds[0].image).toBe(img);
    expect(Object.keys(preds[0].probabilities)).toHaveLength(7);
    expect(Object.values(preds[0].probabilities).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(preds[0]).toEqual(preds[1]);

    const missing = cli(['predict', '--checkpoint', run, join(data.base, 'nope.jpg')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('SLFER_IMAGE_UNREADABLE');
    expect(missing.stderr).toContain('nope.jpg');
  });

  it('stops on a config with an unknown field, naming the file and field', () => {
    const bad = join(data.base, 'bad.json');
    writeFileSync(bad, JSON.stringify({ train: { epochz: 3 } }));
    const r = cli(['train', '--config', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('SLFER_CONFIG_INVALID');
    expect(r.stderr).toContain(bad);
    expect(r.stderr).toContain('"train.epochz"');
  });

  it('stops on a malformed label line, naming the file and line', () => {
    const labels = join(data.root, 'EmoLabel', 'list_patition_label.txt');
    const original = readFileSync(labels, 'utf8');
    appendFileSync(labels, 'train_09999.jpg 8\n');
    try {
      const r = cli(['train', '--config', configFile, '--out', join(data.base, 'bad-label')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('SLFER_LABEL_INVALID');
      expect(r.stderr).toContain(`list_patition_label.txt:${original.trim().split('\n').length + 1}`);
    } finally {
      writeFileSync(labels, original);
    }
  });

  it('skips, counts and lists a corrupt image; stops on a missing mask unless told to skip', () => {
    const img = join(data.root, 'Image', 'aligned', 'train_00003_aligned.jpg');
    const mask = join(data.root, 'Mask', 'aligned', 'train_00005_aligned.png');
    const imgBytes = readFileSync(img);
    const maskBytes = readFileSync(mask);
    writeFileSync(img, Buffer.from('not a jpeg at all'));
    unlinkSync(mask);
    try {
      const stop = cli(['train', '--config', configFile, '--out', join(data.base, 'no-mask')]);
      expect(stop.code).toBe(1);
      expect(stop.stderr).toContain('SLFER_MASK_MISSING');
      expect(stop.stderr).toContain('train_00005_aligned.png');

      const run = join(data.base, 'skip');
      const go = cli(['train', '--config', configFile, '--out', run, '--skip-missing-masks']);
      expect(go.code, go.stderr).toBe(0);
      expect(go.stdout).toMatch(/skipped 2 file\(s\)/);
      expect(go.stdout).toContain('train_00003_aligned.jpg');
      const report = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8')) as { skipped: { path: string; reason: string }[] };
      expect(report.skipped.map((s) => s.reason).sort()).toEqual(['Input file contains unsupported image format', 'no mask'].sort());
    } finally {
      writeFileSync(img, imgBytes);
      writeFileSync(mask, maskBytes);
      rmSync(join(data.base, 'skip'), { recursive: true, force: true });
    }
  });
});
