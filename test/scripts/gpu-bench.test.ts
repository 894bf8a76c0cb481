import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'slfer-gpubench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const OURS = 'node .gpu/slfer.mjs bench train --backend webgpu --size 224 --batch 64 --width 1';
const PEER = 'env THREADS=16 python3 .gpu/peers/torch_train_throughput.py 224 64 20 cuda';

describe('scripts/gpu (the GPU benchmark)', () => {
  it('summary.mjs reads the stage logs run-bench.sh leaves and computes ours over the mean of PyTorch before and after', () => {
    // what run-bench.sh writes: config, one stages.tsv line per stage, one log per stage (stdout and stderr)
    writeFileSync(join(dir, 'config.json'), '{"size":224,"batch":64,"steps":5}\n');
    const stages = [
      ['nvidia-smi', 'ok', 1, 'nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader'],
      ['peer-fp32-before', 'ok', 20, `${PEER} fp32`],
      ['ours', 'ok', 40, `${OURS} --steps 5 --warmup 1 --json`],
      ['ours-profile', 'ok', 50, `${OURS} --steps 1 --warmup 1 --profile --json`],
      ['peer-fp32-after', 'ok', 18, `${PEER} fp32`],
      ['peer-bf16', 'timed out after 60 s', 60, `${PEER} bf16`],
      ['ours-tfjs-kernels', 'ok', 30, `env SLFER_WEBGPU_KERNELS=tfjs ${OURS} --steps 1 --warmup 1 --json`],
    ];
    writeFileSync(join(dir, 'stages.tsv'), stages.map((s) => s.join('\t') + '\n').join(''));
    writeFileSync(join(dir, 'nvidia-smi.log'), 'NVIDIA H200, 580.95.05, 143771 MiB\n');
    const peerLine = (x: number) => `torch 2.11.0+cu130 cuda fp32 threads=16 SLFER 224px batch 64: ${x} img/s (52.0 ms/step)\n`;
    writeFileSync(join(dir, 'peer-fp32-before.log'), peerLine(1200));
    writeFileSync(join(dir, 'peer-fp32-after.log'), 'a warning from torch\n' + peerLine(1000));
    writeFileSync(join(dir, 'peer-bf16.log'), '');
    const engine = 'requested; adapter NVIDIA H200 (nvidia)';
    const warn = 'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16\n';
    writeFileSync(join(dir, 'ours.log'), warn + JSON.stringify({ backend: 'webgpu', engine, trainImagesPerSec: 55, msPerStep: 1163.6, forwardImagesPerSec: 1300, parameters: 13721871 }) + '\n');
    writeFileSync(join(dir, 'ours-tfjs-kernels.log'), warn + JSON.stringify({ backend: 'webgpu', engine, trainImagesPerSec: 22, msPerStep: 2909, forwardImagesPerSec: 1290, parameters: 13721871 }) + '\n');
    const kernels = [
      { kernel: 'Conv2DBackpropFilter', ms: 60, calls: 25 },
      { kernel: 'Sum', ms: 30, calls: 80 },
      { kernel: 'Multiply', ms: 10, calls: 900 },
    ];
    writeFileSync(join(dir, 'ours-profile.log'), warn + JSON.stringify({ backend: 'webgpu', engine, trainImagesPerSec: 50, msPerStep: 1280, forwardImagesPerSec: 1250, parameters: 13721871, kernels }) + '\n');

    const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'gpu', 'summary.mjs'), dir], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('ratio ours / PyTorch fp32 (mean of before and after): 0.05');
    const s = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
    expect(s.gpu).toBe('NVIDIA H200, 580.95.05, 143771 MiB');
    expect(s.adapter).toBe('NVIDIA H200 (nvidia)');
    expect(s.ours).toMatchObject({ status: 'ok', trainImagesPerSec: 55, forwardImagesPerSec: 1300, command: `${OURS} --steps 5 --warmup 1 --json` });
    expect(s.peer).toMatchObject({ torch: '2.11.0+cu130', fp32BeforeImagesPerSec: 1200, fp32AfterImagesPerSec: 1000, fp32MeanImagesPerSec: 1100, bf16ImagesPerSec: null });
    expect(s.ratioOursVsPeerFp32).toBe(0.05); // 55 / ((1200 + 1000) / 2)
    expect(s.tfjsKernels).toMatchObject({ status: 'ok', trainImagesPerSec: 22, oursSpeedup: 2.5 });
    expect(s.profile.topKernels.map((k: { kernel: string; share: number }) => [k.kernel, k.share])).toEqual([
      ['Conv2DBackpropFilter', 0.6],
      ['Sum', 0.3],
      ['Multiply', 0.1],
    ]);
    expect(s.stages.find((x: { name: string }) => x.name === 'peer-bf16').status).toBe('timed out after 60 s');
  });

  it('gives no ratio when our stage did not finish', () => {
    const stages = readFileSync(join(dir, 'stages.tsv'), 'utf8').replace('ours\tok\t40', 'ours\ttimed out after 150 s\t150');
    writeFileSync(join(dir, 'stages.tsv'), stages);
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'gpu', 'summary.mjs'), dir], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
    expect(s.ours.status).toBe('timed out after 150 s');
    expect(s.ours.trainImagesPerSec).toBeNull();
    expect(s.ratioOursVsPeerFp32).toBeNull();
  });

  // .gpu/ exists only where scripts/gpu/prepare.sh ran (it downloads Debian packages, so CI does not run it)
  it.skipIf(!existsSync(join(ROOT, '.gpu', 'slfer.mjs')))('the bundle in .gpu/ runs the CLI on its own (skipped unless scripts/gpu/prepare.sh made .gpu/)', () => {
    // as on the GPU machine: a tree with no node_modules beside .gpu/, its addons unpacked as setup.sh does
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    copyFileSync(join(ROOT, 'package.json'), join(tree, 'package.json'));
    cpSync(join(ROOT, '.gpu'), join(tree, '.gpu'), { recursive: true, filter: (f) => !/\/\.gpu\/(node\.xz|debs)$/.test(f) });
    const unpack = spawnSync('find', [join(tree, '.gpu', 'node_modules'), '-name', '*.xz', '-exec', 'xz', '-df', '{}', '+'], { encoding: 'utf8' });
    expect(unpack.status, unpack.stderr).toBe(0);
    const r = spawnSync(process.execPath, [join(tree, '.gpu', 'slfer.mjs'), 'bench', 'train', '--help'], { encoding: 'utf8', cwd: tree });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('--profile');
    expect(r.stdout).toContain('--json');
  });
});
