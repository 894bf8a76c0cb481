import { spawnSync } from 'node:child_process';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode, encode } from 'fast-png';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch } from '../../cluster/coordinator.js';
import { LABEL_FILE } from '../../src/data/synth/synthesize.js';
import { isSlferError } from '../../src/errors.js';
import { train } from '../../src/train/trainer.js';
import { baseDataset, caseDataset, configFor, firstBatch, image, mask, paletteMask, type BadInputCase } from '../helpers/bad-input.js';

// One case of each kind of bad input through `launch --workers 2`: each rank decodes only its own
// shard, so what one rank skips the other never sees, yet the ranks must stay in step (a rank whose
// whole batch was unreadable still joins the all-reduce with weight 0), end with equal weights, and
// the run must list exactly what the same run in one process lists.
const TRAIN = 12; // 6 a rank: two steps of 3
let base: Awaited<ReturnType<typeof baseDataset>>;
beforeAll(async () => {
  base = await baseDataset(TRAIN);
});
afterAll(() => base?.remove());

const tree = (name: string, make: BadInputCase['make']) => caseDataset(base.root, { name, make }, 'launch');
const config = (root: string) => configFor(root, 'wasm');
const workersOfThisProcess = () =>
  spawnSync('pgrep', ['-a', '-P', String(process.pid)], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.includes('worker.js'));

/** launch --workers 2 and train on the same tree: both complete, the ranks agreed, the same files are listed. */
async function expectLikeOneProcess(root: string, tag: string): Promise<string[]> {
  const lines: string[] = [];
  const two = await launch({ config: config(root), workers: 2, out: `${root}-launch-${tag}`, events: { log: (l) => lines.push(l) } });
  expect(lines.filter((l) => /checksum \w+ equal on all 2 ranks/.test(l))).toHaveLength(1);
  expect(Number.isFinite(two.metrics[0].trainLoss)).toBe(true);
  const one = await train({ config: config(root), out: `${root}-train-${tag}` });
  const paths = (r: { report: { skipped: { path: string }[] } }) => r.report.skipped.map((s) => s.path).sort();
  expect(paths(two)).toEqual(paths(one));
  expect(two.metrics[0].skipped).toBe(one.metrics[0].skipped);
  return paths(two);
}

describe('bad input through launch --workers 2', () => {
  it('images: rank 0 loses its whole first batch, rank 1 one truncated JPEG; equal weights, the same skip list', async () => {
    let lost: number[] = [];
    let truncated = 0;
    const root = await tree('images', async (r) => {
      lost = firstBatch(r, 0, 2);
      truncated = firstBatch(r, 1, 2)[0];
      for (const n of lost) writeFileSync(join(r, image(n)), '');
      truncateSync(join(r, image(truncated)), 120);
    });
    expect(await expectLikeOneProcess(root, 'images')).toEqual([...lost, truncated].map((n) => join(root, image(n))).sort());
  });

  it('masks: palette and 16-bit masks on both ranks are used; equal weights, nothing skipped', async () => {
    const root = await tree('masks', async (r) => {
      for (const n of [1, 2, 3, 4, 5, 6]) {
        const png = decode(readFileSync(join(r, mask(n))));
        const ids = Uint8Array.from(png.data);
        writeFileSync(join(r, mask(n)), n % 2 ? paletteMask({ width: png.width, height: png.height, ids }) : encode({ width: png.width, height: png.height, data: Uint16Array.from(ids), channels: 1, depth: 16 }));
      }
    });
    expect(await expectLikeOneProcess(root, 'masks')).toEqual([]);
  });

  it('labels: a BOM, CRLF, tabs and a trailing blank line; equal weights, nothing skipped', async () => {
    const root = await tree('labels', async (r) => {
      const text = readFileSync(join(r, LABEL_FILE), 'utf8').replace(/^(\S+) (\S+)$/gm, ' $1\t$2 ');
      writeFileSync(join(r, LABEL_FILE), '\uFEFF' + text.replace(/\n/g, '\r\n') + '\r\n\r\n');
    });
    expect(await expectLikeOneProcess(root, 'labels')).toEqual([]);
  });

  it('a mask with class id 19 on one rank stops the whole run with the file named, no checkpoint, no worker left', async () => {
    let path = '';
    const root = await tree('mask-19', async (r) => {
      path = join(r, mask(firstBatch(r, 1, 2)[1]));
      const png = decode(readFileSync(path));
      const ids = Uint8Array.from(png.data);
      ids[ids.length - 1] = 19;
      writeFileSync(path, encode({ width: png.width, height: png.height, data: ids, channels: 1, depth: 8 }));
    });
    const e = await launch({ config: config(root), workers: 2, out: `${root}-launch` }).catch((x: unknown) => x);
    expect(isSlferError(e) && e.code).toBe('SLFER_MASK_INVALID');
    expect((e as Error).message).toMatch(new RegExp(`^worker rank 1: mask ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} holds the class id 19`));
    expect(() => readFileSync(join(`${root}-launch`, 'checkpoints', 'latest.json'))).toThrow();
    expect(workersOfThisProcess()).toEqual([]);
  });
});
