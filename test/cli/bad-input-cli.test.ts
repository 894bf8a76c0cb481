import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode, encode } from 'fast-png';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNativeKernels } from '../../src/engine/native/addon.js';
import { syntheticDataset } from '../helpers/synthetic.js';

// The reproduction of the heap corruption, as a user ran it: 100x100 faces with 19-class masks, one
// training image a truncated JPEG, trained from the command line on the wasm engine with the native
// kernels. Its batch of 15 was what made oneDNN write past its scratchpad. In a child process, so a
// crash is this test's failure, and the exit status and the printed error are the user's.
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'slfer-dist.js');
const native = loadNativeKernels();

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 240_000, env: { ...process.env, FORCE_COLOR: '0', ...env } });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const TRAIN_ARGS = ['train', '--dataset', 'rafdb', '--epochs', '1', '--width', '0.125', '--input-size', '64', '--resize', '72', '--skip-missing-masks', '--backend', 'wasm'];
let data: Awaited<ReturnType<typeof syntheticDataset>>;
let broken: string;

beforeAll(async () => {
  data = await syntheticDataset({ train: 64, test: 16, size: 100, seed: 1 });
  broken = join(data.base, 'broken');
  cpSync(data.root, broken, { recursive: true });
  truncateSync(join(broken, 'Image/aligned/train_00005_aligned.jpg'), 120);
});
afterAll(() => data.cleanup());

describe.runIf(native.ok)('bad input from the command line, wasm with the native kernels', () => {
  for (const variant of ['proposed', 'ct', 'st', 'baseline']) {
    it(`the issue's reproduction completes (--variant ${variant}) and lists the truncated image as skipped`, () => {
      const out = join(data.base, `run-${variant}`);
      const r = cli([...TRAIN_ARGS, '--data', broken, '--variant', variant, '--out', out]);
      expect({ code: r.code, signal: r.signal, stderr: r.stderr.split('\n').filter((l) => /^error |corrupted|Segmentation fault|malloc\(\)|Aborted/.test(l)) }).toEqual({ code: 0, signal: null, stderr: [] });
      expect(r.stdout + r.stderr).toMatch(/convolutions: oneDNN/);
      // libvips's detail comes from an error buffer the decoding threads share, so it may be missing.
      expect(r.stdout).toMatch(/skipped 1 file\(s\):\n\s+\S+train_00005_aligned\.jpg: (Input file has corrupt header|.*premature end of JPEG)/i);
      const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { skipped: { path: string }[] };
      expect(report.skipped.map((s) => s.path)).toEqual([join(broken, 'Image/aligned/train_00005_aligned.jpg')]);
    });
  }

  it('a mask with a class id of 19 stops the run with exit 1 and an error naming the file, without a checkpoint', () => {
    const root = join(data.base, 'bad-mask');
    cpSync(data.root, root, { recursive: true });
    const maskPath = join(root, 'Mask/aligned/train_00003_aligned.png');
    const png = decode(readFileSync(maskPath));
    const ids = Uint8Array.from(png.data);
    ids[0] = 19;
    writeFileSync(maskPath, encode({ width: png.width, height: png.height, data: ids, channels: 1, depth: 8 }));
    const out = join(data.base, 'run-bad-mask');
    const r = cli([...TRAIN_ARGS, '--data', root, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.signal).toBeNull();
    expect(r.stderr).toContain(`error SLFER_MASK_INVALID: mask ${maskPath} holds the class id 19 at pixel (0, 0)`);
    expect(r.stderr).toMatch(/\n\s+→ masks must be PNGs of BiSeNet class ids 0\.\.18/);
    expect(() => readFileSync(join(out, 'checkpoints', 'latest.json'))).toThrow();
  });
});
