#!/usr/bin/env node
// Kill-to-restart time of `launch --max-restarts 1`: a worker is SIGKILLed at step K of epoch 2 and
// the clock runs until the new attempt's workers report their first step. Also prints the steps the
// restart repeats: those of the interrupted epoch before the kill with end-of-epoch checkpoints only
// (every 0), at most `every` with --checkpoint-every. Needs the project built (npm run build).
// Usage: node scripts/bench-restart.mjs [workers] [size] [kill step] [checkpoint every]
import { execSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch } from '../dist/cluster/coordinator.js';
import { synthesize } from '../dist/src/data/synth/synthesize.js';

const [workers = 2, size = 64, killStep = 3, every = 0] = process.argv.slice(2).map(Number);
const cpu = execSync("lscpu | sed -n 's/^Model name:[[:space:]]*//p'", { encoding: 'utf8' }).trim();
const base = mkdtempSync(join(tmpdir(), 'slfer-restart-'));
try {
  await synthesize({ out: join(base, 'data'), train: 96, test: 16, size, seed: 0 });
  let pids = [];
  let attempt = 0;
  let killedAt = 0;
  let restartedAt = 0;
  let repeated = 0;
  let resumedAtStep = 0;
  const r = await launch({
    config: { data: { dataset: 'rafdb', root: join(base, 'data'), resize: size, threads: 1 }, model: { width: 0.125, inputSize: size }, train: { epochs: 3, batchSize: 4, milestones: [2], ...(every > 0 ? { checkpointEvery: every } : {}) }, engine: { backend: 'wasm' } },
    workers,
    maxRestarts: 1,
    out: join(base, 'run'),
    events: {
      workersStarted: (p, a) => ((pids = p), (attempt = a)),
      step: (s) => {
        if (attempt === 1 && s.epoch === 2 && s.step === killStep && !killedAt) {
          killedAt = performance.now();
          repeated = s.step;
          process.kill(pids[1], 'SIGKILL');
        }
        if (attempt === 2 && !restartedAt) {
          restartedAt = performance.now();
          // The first step the new attempt reports is the one after its checkpoint's.
          resumedAtStep = s.step - 1;
        }
      },
    },
  });
  console.log(`machine: ${cpu}, ${workers} workers, ${size}px, width 0.125`);
  // Steps the kill undid: those done since the checkpoint the restart resumed from.
  const lost = repeated - resumedAtStep;
  console.log(`kill to the new attempt's first step: ${((restartedAt - killedAt) / 1000).toFixed(2)} s; steps repeated: ${lost} of ${repeated} done in the interrupted epoch (${every > 0 ? `--checkpoint-every ${every}` : 'end-of-epoch checkpoints only'}); the run completed all ${r.metrics.length} epochs`);
} finally {
  rmSync(base, { recursive: true, force: true });
}
