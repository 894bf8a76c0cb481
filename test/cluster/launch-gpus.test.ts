import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch } from '../../cluster/coordinator.js';
import { vkLayerDir, vkLayerEnv } from '../../src/engine/gpu-select.js';
import type { SlferError } from '../../src/errors.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';
import { vkLayerSkipReason } from '../helpers/vk-layer-gate.js';

// `launch --gpus` end to end on a machine without NVIDIA GPUs: an nvidia-smi stand-in on PATH lists
// this machine's Vulkan device (lavapipe here) under its real Vulkan UUID, next to a GPU that does not
// exist. The coordinator, the worker's engine and the layer are the real ones: the rank given the
// real UUID must train on it, the rank given the other must stop with the typed error. Gated by
// test/helpers/vk-layer-gate.ts.
const ROOT = join(import.meta.dirname, '..', '..');
const reason = vkLayerSkipReason();

it('the launch --gpus tests run wherever the webgpu engine is required', () => {
  if (process.env.SLFER_REQUIRE_WEBGPU === '1') expect(reason || 'ready').toBe('ready');
});

const MISSING = 'GPU-00000000-1111-2222-3333-444444444444';

describe.runIf(!reason)(`launch --gpus, one worker per Vulkan device${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let data: Awaited<ReturnType<typeof syntheticDataset>>;
  let uuid = '';
  const saved = { PATH: process.env.PATH, CUDA_VISIBLE_DEVICES: process.env.CUDA_VISIBLE_DEVICES };

  beforeAll(async () => {
    data = await syntheticDataset({ train: 16, test: 8, size: 40 });
    // The first Vulkan device's UUID, as the layer lists it when nothing matches.
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', "const { create, globals } = await import('webgpu'); Object.assign(globalThis, globals); await create([]).requestAdapter();"], {
      cwd: ROOT,
      env: { ...process.env, ...vkLayerEnv(process.env, vkLayerDir()), SLFER_VK_DEVICE: 'index:4294967295' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    uuid = /index:0 uuid:(\S+)/.exec(r.stderr)?.[1] ?? '';
    expect(uuid, r.stderr).toMatch(/^[0-9a-f-]{36}$/);
    const smi = join(data.base, 'nvidia-smi');
    writeFileSync(smi, `#!/bin/sh\necho "0, ${MISSING}, 00000000:3B:00.0, NVIDIA H200"\necho "1, GPU-${uuid}, 00000000:00:00.0, the Vulkan device"\n`);
    chmodSync(smi, 0o755);
    process.env.PATH = `${data.base}${delimiter}${process.env.PATH}`;
  });
  afterAll(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    data?.cleanup();
  });

  const config = () => ({ ...tinyConfig(data.root, 40, { epochs: 1, batchSize: 4 }), engine: { backend: 'webgpu' as const } });

  it("honours CUDA_VISIBLE_DEVICES: the rank on GPU 1 trains on that GPU's Vulkan device and the log says so", async () => {
    process.env.CUDA_VISIBLE_DEVICES = '1';
    const lines: string[] = [];
    const r = await launch({ gpus: 1, config: config(), out: join(data.base, 'gpu1'), heartbeatTimeoutMs: 30_000, events: { log: (l) => lines.push(l) } });
    expect(r.backend).toBe('webgpu');
    expect(r.metrics).toHaveLength(1);
    const rank0 = lines.find((l) => l.startsWith('  rank 0:'));
    expect(rank0).toContain(`rank 0: GPU 1 GPU-${uuid} (the Vulkan device) → webgpu`);
    expect(rank0).toContain(`SLFER_VK_DEVICE=uuid:GPU-${uuid} chose Vulkan device index:0 uuid:${uuid}`);
  });

  it('a GPU that Vulkan does not have stops the run before training, with the typed error and the devices there are', async () => {
    delete process.env.CUDA_VISIBLE_DEVICES;
    const err = (await launch({ gpus: 1, config: config(), out: join(data.base, 'gpu0'), heartbeatTimeoutMs: 30_000 }).catch((e: unknown) => e)) as SlferError;
    // The worker's typed error, or (when its exit outruns its last message) its exit with that error in its last lines.
    expect(`${err.code} ${err.message}`).toContain('SLFER_GPU_SELECTION');
    expect(err.message).toContain('worker rank 0');
    expect(err.message).toContain(`SLFER_VK_DEVICE=uuid:${MISSING} matches none of the Vulkan devices: index:0 uuid:${uuid}`);
    expect(existsSync(join(data.base, 'gpu0', 'metrics.jsonl'))).toBe(false);
  });

  it('under a launcher (one process per rank), --gpus pins each rank to its local rank\'s GPU', async () => {
    delete process.env.CUDA_VISIBLE_DEVICES;
    // This stand-in lists the Vulkan device first and the missing GPU second: local rank 0 trains
    // on the real device, local rank 1 is given the missing one and stops with the typed error.
    const dir = join(data.base, 'smi-ranks');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'nvidia-smi'), `#!/bin/sh\necho "0, GPU-${uuid}, 00000000:00:00.0, the Vulkan device"\necho "1, ${MISSING}, 00000000:3B:00.0, NVIDIA H200"\n`);
    chmodSync(join(dir, 'nvidia-smi'), 0o755);
    const file = join(data.base, 'ranks.json');
    writeFileSync(file, JSON.stringify(config()));
    const port = String(20_000 + Math.floor(Math.random() * 20_000));
    const ranks = [0, 1].map((rank) =>
      spawnAsync(process.execPath, [join(ROOT, 'bin', 'slfer-dist.js'), 'launch', '--gpus', '2', '--config', file, '--out', join(data.base, `ranks-${rank}`)], {
        ...process.env,
        PATH: `${dir}${delimiter}${process.env.PATH}`,
        SLFER_RANK: String(rank),
        SLFER_LOCAL_RANK: String(rank),
        SLFER_WORLD_SIZE: '2',
        SLFER_MASTER_ADDR: '127.0.0.1',
        SLFER_MASTER_PORT: port,
      }),
    );
    const [r0, r1] = await Promise.all(ranks);
    expect(r0.text).toContain(`rank 0 (local rank 0): GPU 0 GPU-${uuid} (the Vulkan device)`);
    expect(r1.text).toContain(`rank 1 (local rank 1): GPU 1 ${MISSING} (NVIDIA H200)`);
    expect(r1.text).toContain(`SLFER_VK_DEVICE=uuid:${MISSING} matches none of the Vulkan devices`);
    expect(r1.code).not.toBe(0);
  }, 180_000);
});

function spawnAsync(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    child.on('exit', (code) => resolve({ code, text }));
  });
}
