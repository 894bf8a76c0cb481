import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMaskClasses } from '../../src/data/mask-file.js';
import { runCli } from '../helpers/cli.js';
import { readRafDb } from '../../src/data/rafdb.js';
import { findHumanPackage } from '../../src/parse/human-package.js';
import { BISENET_ZIP } from './bisenet-fixture.js';
import { rafdbWithoutMasks } from './parse-datasets.js';

// `slfer-dist parse` end to end through bin/slfer-dist.js, at BiSeNet's default 512px input (the
// compiled CLI: `npx tsc -p tsconfig.json` first, as npm test's pretest does).

function cli(args: string[]) {
  const r = runCli(args);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let data: Awaited<ReturnType<typeof rafdbWithoutMasks>>;
beforeAll(async () => {
  data = await rafdbWithoutMasks(3, 2, 100);
});
afterAll(() => data.cleanup());

describe('slfer-dist parse (CLI)', () => {
  it('has --help listing its options', () => {
    const r = cli(['parse', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--data <dir>', '--dataset <kind>', '--method <name>', '--weights <file>', '--overwrite', '--input-size <px>']) expect(r.stdout).toContain(flag);
  });

  it('writes every mask at 512px input, reports counts and parse.json, then keeps them on a rerun', () => {
    const bad = join(data.root, 'Image', 'aligned', 'test_0002_aligned.jpg');
    writeFileSync(bad, 'not a jpeg');
    const r = cli(['parse', '--data', data.root, '--weights', BISENET_ZIP]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/parse: 5 of 5 rafdb images with bisenet on wasm/);
    expect(r.stderr).toMatch(/\d\/5\s+[\d.]+ img\/s\s+ETA \d+:\d\d/); // plain progress lines on a pipe
    expect(r.stderr).not.toContain('\r');
    expect(r.stdout).toMatch(/wrote 4 masks, kept 0, skipped 1 of 5 rafdb images in [\d.]+ s \([\d.]+ img\/s\)/);
    expect(r.stdout).toContain(`skipped 1 image(s):\n  ${bad}: `);
    const parseJson = join(data.root, 'Mask', 'aligned', 'parse.json');
    expect(r.stdout).toContain(`parse.json: ${parseJson}`);
    const j = JSON.parse(readFileSync(parseJson, 'utf8'));
    expect(j.description.inputSize).toBe(512);
    expect(j.counts).toEqual({ images: 5, written: 4, kept: 0, skipped: 1 });

    const again = cli(['parse', '--data', data.root, '--weights', BISENET_ZIP]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/wrote 0 masks, kept 4, skipped 1 of 5/);
  });

  it('writes masks the dataset reader and the mask reader accept', async () => {
    const splits = readRafDb(data.root);
    const good = [...splits.train, ...splits.test].filter((s) => !s.imagePath.endsWith('test_0002_aligned.jpg'));
    for (const s of good) {
      expect(s.maskPath).toBe(s.expectedMaskPath);
      const mask = await readMaskClasses(s.maskPath!, { width: 100, height: 100 });
      expect([mask.width, mask.height]).toEqual([100, 100]);
    }
  });

  it('writes a preview grid of images with their masks with --preview', async () => {
    const file = join(data.base, 'preview.png');
    const r = cli(['parse', '--data', data.root, '--weights', BISENET_ZIP, '--preview', file, '--preview-count', '3']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`preview: ${file} (3 images)`);
    const meta = await sharp(file).metadata();
    expect([meta.format, meta.height]).toEqual(['png', 16 + 3 * 132]);
  });

  it('exits 1 with the error code and what to do for weights that are not there or not BiSeNet\'s', () => {
    const missing = cli(['parse', '--data', data.root, '--weights', join(data.base, 'nope.pth'), '--overwrite']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`error SLFER_WEIGHTS_NOT_FOUND: weights file ${join(data.base, 'nope.pth')}`);
    expect(missing.stderr).toContain('→ pass the path of');
    const notTorch = join(data.base, 'not-torch.pth');
    writeFileSync(notTorch, 'hello');
    const bad = cli(['parse', '--data', data.root, '--weights', notTorch, '--overwrite']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error SLFER_[A-Z_]+: .*not-torch\.pth/m);
    expect(bad.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    expect(existsSync(join(data.root, 'Mask', 'aligned', 'parse.json'))).toBe(true); // the earlier run's stays
  });

  // The optional package the method needs (npm ci installs it); skipped, saying why, without it.
  const human = (() => {
    try {
      findHumanPackage();
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  })();
  it.skipIf(human !== null)(`runs --method landmarks through its dynamically imported module${human ? ` (skipped: ${human})` : ''}, recording that it is not the paper's protocol`, async () => {
    const lm = await rafdbWithoutMasks(2, 1, 100);
    try {
      const r = cli(['parse', '--data', lm.root, '--method', 'landmarks']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/wrote \d masks, kept 0, skipped \d of 3 rafdb images/);
      const j = JSON.parse(readFileSync(join(lm.root, 'Mask', 'aligned', 'parse.json'), 'utf8'));
      expect(j.method).toBe('landmarks');
      expect(j.counts.written + j.counts.skipped).toBe(3);
      expect(JSON.stringify(j.description)).toContain("not the paper's");
    } finally {
      lm.cleanup();
    }
  });
});
