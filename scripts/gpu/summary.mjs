#!/usr/bin/env node
// Writes OUT/summary.json from what scripts/gpu/run-bench.sh left in OUT:
//   config.json   the run's settings
//   stages.tsv    one line per stage: name, status, seconds, command
//   <stage>.log   each stage's stdout and stderr
// Plain Node, no packages: it runs on the GPU machine with the node from .gpu/.
// Usage: node scripts/gpu/summary.mjs OUT
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const read = (dir, file) => (existsSync(join(dir, file)) ? readFileSync(join(dir, file), 'utf8') : '');

/** The stages in run order, from stages.tsv. */
function stages(dir) {
  return read(dir, 'stages.tsv')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [name, status, seconds, command] = l.split('\t');
      return { name, status, seconds: Number(seconds), command, log: `${name}.log` };
    });
}

/** The peer's img/s and torch version, from its one result line: "torch 2.11.0 cuda fp32 …: 1234.56 img/s (51.8 ms/step)". */
function peerFigure(dir, stage) {
  if (!stage || stage.status !== 'ok') return null;
  const m = read(dir, stage.log).match(/^torch (\S+) .*: ([0-9.]+) img\/s/m);
  return m ? { imagesPerSec: Number(m[2]), torch: m[1] } : null;
}

/** `bench train --json` prints one JSON line; the log also holds stderr (Dawn's warnings), so take the last line that parses. */
function benchJson(dir, stage) {
  if (!stage || stage.status !== 'ok') return null;
  const lines = read(dir, stage.log).split('\n').filter((l) => l.startsWith('{')).reverse();
  for (const l of lines) {
    try {
      const j = JSON.parse(l);
      if (typeof j.trainImagesPerSec === 'number') return j;
    } catch {
      // not the result line
    }
  }
  return null;
}

const round = (x, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(d)));

export function summarize(dir) {
  const all = stages(dir);
  const by = Object.fromEntries(all.map((s) => [s.name, s]));
  const config = JSON.parse(read(dir, 'config.json') || '{}');
  const before = peerFigure(dir, by['peer-fp32-before']);
  const after = peerFigure(dir, by['peer-fp32-after']);
  const bf16 = peerFigure(dir, by['peer-bf16']);
  const fp32 = [before, after].filter(Boolean).map((p) => p.imagesPerSec);
  const peerMean = fp32.length ? fp32.reduce((a, b) => a + b, 0) / fp32.length : null;
  const ours = benchJson(dir, by.ours);
  const prof = benchJson(dir, by['ours-profile']);
  const tfjs = benchJson(dir, by['ours-tfjs-kernels']);
  const kernels = prof?.kernels ?? [];
  const kernelMs = kernels.reduce((a, k) => a + k.ms, 0);
  const gpu = by['nvidia-smi']?.status === 'ok' ? read(dir, by['nvidia-smi'].log).split('\n')[0].trim() || null : null;
  const engine = ours?.engine ?? prof?.engine ?? null;
  return {
    config,
    gpu,
    adapter: engine?.match(/adapter (.+)$/)?.[1] ?? null,
    ours: {
      status: by.ours?.status ?? 'not run',
      command: by.ours?.command ?? null,
      backend: ours?.backend ?? null,
      engine,
      trainImagesPerSec: round(ours?.trainImagesPerSec),
      msPerStep: round(ours?.msPerStep, 1),
      forwardImagesPerSec: round(ours?.forwardImagesPerSec),
      parameters: ours?.parameters ?? null,
      // slfer-dist's WGSL kernels the engine ran with (an empty list means tfjs's own throughout)
      slferKernels: ours?.slferKernels ?? null,
    },
    // the same engine with tfjs-backend-webgpu's own kernels (SLFER_WEBGPU_KERNELS=tfjs): what ours gain
    tfjsKernels: {
      status: by['ours-tfjs-kernels']?.status ?? 'not run',
      command: by['ours-tfjs-kernels']?.command ?? null,
      trainImagesPerSec: round(tfjs?.trainImagesPerSec),
      forwardImagesPerSec: round(tfjs?.forwardImagesPerSec),
      oursSpeedup: ours && tfjs ? round(ours.trainImagesPerSec / tfjs.trainImagesPerSec, 3) : null,
    },
    peer: {
      torch: (before ?? after ?? bf16)?.torch ?? null,
      fp32BeforeImagesPerSec: round(before?.imagesPerSec),
      fp32AfterImagesPerSec: round(after?.imagesPerSec),
      fp32MeanImagesPerSec: round(peerMean),
      bf16ImagesPerSec: round(bf16?.imagesPerSec),
      commands: {
        fp32Before: by['peer-fp32-before']?.command ?? null,
        fp32After: by['peer-fp32-after']?.command ?? null,
        bf16: by['peer-bf16']?.command ?? null,
      },
    },
    // ours over the mean of PyTorch fp32 before and after, both training the same model at the same size and batch
    ratioOursVsPeerFp32: ours && peerMean ? round(ours.trainImagesPerSec / peerMean, 4) : null,
    profile: {
      status: by['ours-profile']?.status ?? 'not run',
      command: by['ours-profile']?.command ?? null,
      kernelMs: round(kernelMs, 1),
      topKernels: kernels.slice(0, 12).map((k) => ({ kernel: k.kernel, ms: round(k.ms, 2), calls: k.calls, share: round(kernelMs ? k.ms / kernelMs : null, 4) })),
    },
    stages: all,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: node scripts/gpu/summary.mjs OUT\n');
    process.exit(2);
  }
  const s = summarize(dir);
  writeFileSync(join(dir, 'summary.json.tmp'), JSON.stringify(s, null, 2) + '\n');
  renameSync(join(dir, 'summary.json.tmp'), join(dir, 'summary.json'));
  const f = (x, unit = ' img/s') => (x === null ? 'n/a' : `${x}${unit}`);
  process.stdout.write(
    [
      `GPU: ${s.gpu ?? 'n/a'}; WebGPU adapter: ${s.adapter ?? 'n/a'}`,
      `ours (${s.ours.status}): train ${f(s.ours.trainImagesPerSec)}, forward ${f(s.ours.forwardImagesPerSec)}   [${s.ours.command ?? '-'}]`,
      `PyTorch fp32: before ${f(s.peer.fp32BeforeImagesPerSec)}, after ${f(s.peer.fp32AfterImagesPerSec)}, bf16 ${f(s.peer.bf16ImagesPerSec)}   [${s.peer.commands.fp32Before ?? '-'}]`,
      `ratio ours / PyTorch fp32 (mean of before and after): ${s.ratioOursVsPeerFp32 ?? 'n/a'}`,
      `with tfjs's own webgpu kernels (${s.tfjsKernels.status}): train ${f(s.tfjsKernels.trainImagesPerSec)}; ours ${s.tfjsKernels.oursSpeedup ?? 'n/a'}x`,
      `profiled step (${s.profile.status}): ${s.profile.topKernels.slice(0, 6).map((k) => `${k.kernel} ${(k.share * 100).toFixed(1)}%`).join(', ') || 'n/a'}`,
      `summary: ${join(dir, 'summary.json')}`,
    ].join('\n') + '\n',
  );
}
