import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import type { DatasetSplits } from '../../src/data/types.js';
import { selectBackend } from '../../src/engine/backend.js';
import { loadCheckpoint, saveCheckpoint, type RankEpochProgress } from '../../src/train/checkpoint.js';
import type { EpochMetrics } from '../../src/train/run-files.js';
import { TrainingSession, type GradientReducer, type StepEvent } from '../../src/train/session.js';
import { prepareData, specsOf, train } from '../../src/train/trainer.js';
import { runCli } from '../helpers/cli.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';
import { rejected, thrown } from '../helpers/thrown.js';

// 48 images in batches of 4: 12 steps an epoch, mid-epoch checkpoints after steps 5 and 10.
const EVERY = 5;
let data: Awaited<ReturnType<typeof syntheticDataset>>;
let whole: Awaited<ReturnType<typeof train>>;
const config = () => tinyConfig(data.root, 32, { epochs: 2, batchSize: 4 });

beforeAll(async () => {
  data = await syntheticDataset({ train: 48, test: 8, size: 32 });
  // The reference: no mid-epoch checkpoints at all, so the tests also show that taking them does
  // not change the run.
  whole = await train({ config: config(), out: join(data.base, 'whole') });
});
afterAll(() => data.cleanup());

const finalTensors = (runDir: string) => readFileSync(join(loadCheckpoint(runDir).path, 'tensors.bin'));
const metricsOf = (runDir: string) =>
  readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as EpochMetrics);
/** The fields of a metrics line that do not depend on timing. */
const deterministic = (m: EpochMetrics) => ({
  epoch: m.epoch,
  trainLoss: m.trainLoss,
  trainLossParts: m.trainLossParts,
  testAccuracy: m.testAccuracy,
  meanClassAccuracy: m.meanClassAccuracy,
  lr: m.lr,
  skipped: m.skipped,
  workers: m.workers,
  backend: m.backend,
});

describe('mid-epoch checkpoints of train (--checkpoint-every)', () => {
  it('stopped mid-epoch and resumed, repeats at most K steps and ends bitwise as an uninterrupted run, metrics lines included', async () => {
    const out = join(data.base, 'stopped');
    const controller = new AbortController();
    // Epoch 2, step 8: the newest checkpoint is the one after step 5 of that epoch.
    const stopped = await rejected(
      train({ config: { ...config(), train: { ...config().train, checkpointEvery: EVERY } }, out, signal: controller.signal, events: { step: (s) => s.epoch === 2 && s.step === 8 && controller.abort() } }),
    );
    expect(stopped.code).toBe('SLFER_ABORTED');
    // Epoch 1's mid-epoch checkpoints went when it ended; the best is the end-of-epoch one.
    expect(readdirSync(join(out, 'checkpoints')).sort()).toEqual(['best.json', 'epoch-0001', 'epoch-0001-step-000005', 'latest.json']);
    expect(JSON.parse(readFileSync(join(out, 'checkpoints', 'best.json'), 'utf8'))).toMatchObject({ path: 'epoch-0001' });
    expect(metricsOf(out).map((m) => m.epoch)).toEqual([1]);

    const tensorsBefore = tf.memory().numTensors;
    const steps: StepEvent[] = [];
    const lines: string[] = [];
    const resumed = await train({ resume: out, events: { log: (l) => lines.push(l), step: (s) => steps.push(s) } });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(lines).toContain(`resumed from ${join(out, 'checkpoints', 'epoch-0001-step-000005')} in epoch 2, after step 5 of 12`);
    // It goes on with step 6: steps 6..8 are done twice, fewer than K.
    expect(steps[0]).toMatchObject({ epoch: 2, step: 6, steps: 12 });
    expect(8 - (steps[0].step - 1)).toBeLessThanOrEqual(EVERY);
    expect(steps.filter((s) => s.epoch === 2)).toHaveLength(7);

    expect(finalTensors(resumed.runDir).equals(finalTensors(whole.runDir))).toBe(true);
    expect(metricsOf(out).map(deterministic)).toEqual(metricsOf(whole.runDir).map(deterministic));
    expect(resumed.report.accuracy).toBe(whole.report.accuracy);
    expect(readdirSync(join(out, 'checkpoints')).filter((n) => n.includes('-step-'))).toEqual([]);
  });

  it('killed (SIGKILL) right after a mid-epoch checkpoint appears, `--resume auto` continues from it to the same weights', async () => {
    const out = join(data.base, 'killed');
    const file = join(data.base, 'killed.json');
    writeFileSync(file, JSON.stringify(config()));
    const bin = join(import.meta.dirname, '..', '..', 'bin', 'slfer-dist.js');
    const args = ['train', '-c', file, '--out', out, '--checkpoint-every', String(EVERY)];
    const cli = spawn(process.execPath, [bin, ...args], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((r) => cli.on('exit', (_, signal) => r(signal)));
    // The folder is renamed into place whole: once it is there, the checkpoint is complete.
    const first = join(out, 'checkpoints', 'epoch-0000-step-000005');
    const deadline = Date.now() + 60_000;
    while (!existsSync(first) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    cli.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(existsSync(join(out, 'report.json'))).toBe(false);

    const again = runCli([...args, '--resume', 'auto']);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/resumed from \S+epoch-\d{4}-step-\d{6} in epoch [12], after step (5|10) of 12/);
    expect(finalTensors(out).equals(finalTensors(whole.runDir))).toBe(true);
    expect(metricsOf(out).map(deterministic)).toEqual(metricsOf(whole.runDir).map(deterministic));
  });

  it('a kill between an epoch\'s metrics line and its checkpoint loses neither: `--resume auto` redoes the epoch and replaces the line', async () => {
    // What such a kill leaves in the first epoch: the line (written first) and no checkpoint.
    const out = join(data.base, 'line-first');
    mkdirSync(out);
    writeFileSync(join(out, 'metrics.jsonl'), JSON.stringify({ ...metricsOf(whole.runDir)[0], trainLoss: -1 }) + '\n');
    await train({ config: { ...config(), train: { ...config().train, epochs: 1 } }, out, resume: 'auto' });
    expect(metricsOf(out).map(deterministic)).toEqual(metricsOf(whole.runDir).slice(0, 1).map(deterministic));
  });

  it('--checkpoint-every must be a step count >= 1, on train and launch', () => {
    for (const cmd of ['train', 'launch']) {
      const r = runCli([cmd, '--checkpoint-every', '0']);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('--checkpoint-every must be at least 1');
    }
    const r = runCli(['train', '--checkpoint-every', '2.5']);
    expect(r.stderr).toContain('--checkpoint-every must be an integer');
  });
});

/**
 * Averages two in-process sessions' gradients, weighted by batch size, as the ring does for two
 * workers: each session's reduce waits for the other's.
 */
class PairReducer implements GradientReducer {
  private first?: { grads: tf.Tensor[]; n: number; done: (r: { grads: tf.Tensor[]; samples: number }) => void };

  reduce(grads: tf.Tensor[], n: number): Promise<{ grads: tf.Tensor[]; samples: number }> {
    return new Promise((done) => {
      const other = this.first;
      if (!other) {
        this.first = { grads, n, done };
        return;
      }
      this.first = undefined;
      const samples = n + other.n;
      const mean = grads.map((g, i) => tf.tidy(() => tf.div(tf.add(tf.mul(g, n), tf.mul(other.grads[i], other.n)), Math.max(1, samples))));
      const copy = mean.map((m) => m.clone());
      tf.dispose([...grads, ...other.grads]);
      other.done({ grads: copy, samples });
      done({ grads: mean, samples });
    });
  }
}

/** Resolves once `n` callers have arrived. */
function barrier(n: number): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const all = new Promise<void>((r) => (open = r));
  return () => {
    if (++arrived === n) open();
    return all;
  };
}

describe('mid-epoch checkpoints of a worker group (the format and session side of launch)', () => {
  let cfg: ReturnType<typeof resolveConfig>;
  let splits: DatasetSplits;
  beforeAll(async () => {
    await selectBackend('wasm');
    cfg = resolveConfig(config());
    splits = (await prepareData(cfg, () => {})).splits;
  });

  it('hold every rank\'s BN statistics; each rank resumes with its own, bitwise where the uninterrupted group ends', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const checkpoints = join(data.base, 'pair', 'checkpoints');
    // Two ranks train epoch 1 (6 steps each) with a checkpoint after step 4, gathered as launch
    // would: every rank's rankProgress to rank 0, which saves one file.
    const group = [0, 1].map((r) => new TrainingSession(cfg, splits, r, 2));
    const reducer = new PairReducer();
    const gathered: RankEpochProgress[] = [];
    const gatheredAll = barrier(2);
    const ends = await Promise.all(
      group.map((s) =>
        s.trainEpoch(0, {
          reducer,
          checkpointEvery: 4,
          onCheckpointDue: async () => {
            gathered[s.rank] = await s.rankProgress();
            await gatheredAll();
            if (s.rank === 0) saveCheckpoint(checkpoints, await s.midEpochState(gathered), specsOf(s.model));
          },
        }),
      ),
    );
    const uninterrupted = await Promise.all(group.map((s) => s.model.store.read()));

    const ckpt = loadCheckpoint(checkpoints);
    expect([ckpt.epoch, ckpt.stepInEpoch, ckpt.worldSize]).toEqual([0, 4, 2]);
    const bytes = (xs: Float32Array[]) => Buffer.concat(xs.map((x) => Buffer.from(x.buffer, x.byteOffset, x.byteLength)));
    // Mid-epoch, each rank's moving statistics follow its own shard.
    expect(bytes(ckpt.ranks![0].buffers).equals(bytes(ckpt.ranks![1].buffers))).toBe(false);

    const again = [0, 1].map((r) => new TrainingSession(cfg, splits, r, 2));
    for (const s of again) {
      s.restore(ckpt);
      expect(s.resumePoint).toEqual({ epoch: 0, step: 4 });
      expect(bytes((await s.model.store.read()).buffers).equals(bytes(ckpt.ranks![s.rank].buffers))).toBe(true);
    }
    const pair = new PairReducer();
    const resumedEnds = await Promise.all(again.map((s) => s.trainEpoch(0, { reducer: pair })));
    for (const r of [0, 1]) {
      const back = await again[r].model.store.read();
      expect(bytes(back.params).equals(bytes(uninterrupted[r].params)), `rank ${r} weights`).toBe(true);
      expect(bytes(back.buffers).equals(bytes(uninterrupted[r].buffers)), `rank ${r} BN statistics`).toBe(true);
      expect(resumedEnds[r]).toMatchObject({ startStep: 4, images: ends[r].images, lossSums: ends[r].lossSums, steps: 6 });
      expect(again[r].step).toBe(group[r].step);
      expect(again[r].adam.t).toBe(group[r].adam.t);
    }

    // Only its own world size can continue it, whatever the flags.
    const alone = new TrainingSession(cfg, splits, 0, 1);
    const e = thrown(() => alone.restore(ckpt));
    expect(e.code).toBe('SLFER_CHECKPOINT_MISMATCH');
    expect(e.message).toContain('in the middle of epoch 1 (after step 4) by 2 processes, and this run has 1');
    expect(e.hint).toContain('checkpoints/epoch-0000');
    const t = await rejected(train({ resume: join(data.base, 'pair'), allowWorldSizeChange: true }));
    expect(t.code).toBe('SLFER_CHECKPOINT_MISMATCH');
    expect(t.message).toContain('by 2 processes, and this run has 1');

    // Misuse is a loud bug, not other weights.
    const other = new TrainingSession(cfg, splits, 1, 2);
    other.restore(ckpt);
    expect((await rejected(other.trainEpoch(1))).message).toContain('middle of epoch 1 was restored, and then epoch 2 was asked for');
    expect((await rejected(other.midEpochState())).code).toBe('SLFER_INTERNAL');

    for (const s of [...group, ...again, alone, other]) await s.close();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
});
