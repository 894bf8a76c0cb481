import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { confirmGpuSelection, parseLayerReport, parseVkDevice, prepareGpuSelection, vkLayerDir, vkLayerEnv } from '../../src/engine/gpu-select.js';
import { thrown } from '../helpers/thrown.js';
import { vkLayerSkipReason } from '../helpers/vk-layer-gate.js';

describe('SLFER_VK_DEVICE', () => {
  it('reads uuid:, index: and pci: as the layer does', () => {
    expect(parseVkDevice('index:3')).toEqual({ by: 'index', index: 3 });
    expect(parseVkDevice('index:4294967295')).toEqual({ by: 'index', index: 4294967295 });
    expect(parseVkDevice('uuid:GPU-1B2C3D4E-0000-1111-2222-333344445555')).toEqual({ by: 'uuid', uuid: '1b2c3d4e000011112222333344445555' });
    expect(parseVkDevice('uuid:1b2c3d4e000011112222333344445555')).toEqual({ by: 'uuid', uuid: '1b2c3d4e000011112222333344445555' });
    expect(parseVkDevice('pci:00000000:3B:00.0')).toEqual({ by: 'pci', address: '00000000:3b:00.0' });
    expect(parseVkDevice('pci:3b:00.1')).toEqual({ by: 'pci', address: '0000:3b:00.1' });
  });

  it('refuses anything else with a typed error naming the value and the forms', () => {
    for (const bad of ['gpu3', 'index:', 'index:-1', 'index:4294967296', 'index:1.5', 'uuid:1234', 'uuid:GPU-zz2c3d4e-0000-1111-2222-333344445555', 'pci:3b:00', 'pci:3b:20.0', 'pci:3b:00.8', 'INDEX:0']) {
      const e = thrown(() => parseVkDevice(bad));
      expect(e.code, bad).toBe('SLFER_GPU_SELECTION');
      expect(e.message).toContain(`SLFER_VK_DEVICE=${bad}`);
      expect(e.message).toContain('uuid:<GPU UUID>, index:<n> or pci:');
    }
  });

  it('points the Vulkan loader at the layer, keeping what the user set', () => {
    expect(vkLayerEnv({}, '/x/vk-layer')).toEqual({ VK_ADD_LAYER_PATH: '/x/vk-layer', VK_INSTANCE_LAYERS: 'VK_LAYER_SLFER_device_select', NODEVICE_SELECT: '1' });
    const env = { VK_ADD_LAYER_PATH: `/a${delimiter}/x/vk-layer`, VK_LAYER_PATH: '/b', VK_INSTANCE_LAYERS: 'VK_LAYER_KHRONOS_validation' };
    expect(vkLayerEnv(env, '/x/vk-layer')).toEqual({
      VK_ADD_LAYER_PATH: `/x/vk-layer${delimiter}/a`,
      VK_LAYER_PATH: `/x/vk-layer${delimiter}/b`,
      VK_INSTANCE_LAYERS: `VK_LAYER_SLFER_device_select${delimiter}VK_LAYER_KHRONOS_validation`,
      NODEVICE_SELECT: '1',
    });
  });

  it('does nothing when unset, and stops before Dawn when the layer is not built', () => {
    expect(prepareGpuSelection({})).toBeUndefined();
    const env: NodeJS.ProcessEnv = { SLFER_VK_DEVICE: 'index:0' };
    const e = thrown(() => prepareGpuSelection(env, '/nonexistent/vk-layer'));
    expect(e.code).toBe('SLFER_GPU_SELECTION');
    expect(e.message).toContain('SLFER_VK_DEVICE=index:0 needs the Vulkan layer VK_LAYER_SLFER_device_select, which is not built');
    expect(e.hint).toContain('npm run build:native');
    expect(env).toEqual({ SLFER_VK_DEVICE: 'index:0' });
  });

  it("reads the layer's report; no report means the layer did not run", () => {
    const text = 'selection\tindex:1\nchosen\tnone\ndevice\t0\t6d657361-3235-2e30-2e37-2d327e627000\t-\tCPU\tllvmpipe (LLVM 15.0.6, 256 bits)\n';
    expect(parseLayerReport(text)).toEqual({
      selection: 'index:1',
      chosen: 'none',
      devices: [{ index: 0, uuid: '6d657361-3235-2e30-2e37-2d327e627000', pci: '-', type: 'CPU', name: 'llvmpipe (LLVM 15.0.6, 256 bits)' }],
    });
    expect(parseLayerReport('selection\tindex:0\nchosen\t0\n').chosen).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'slfer-gpu-select-'));
    try {
      const e = thrown(() => confirmGpuSelection({ value: 'index:0', layerDir: '/x/vk-layer', reportPath: join(dir, 'none.tsv') }, {}));
      expect(e.code).toBe('SLFER_GPU_SELECTION');
      expect(e.message).toContain('did not run');
      expect(e.hint).toContain('VK_LAYER_PATH=/x/vk-layer');
      writeFileSync(join(dir, 'r.tsv'), text);
      expect(thrown(() => confirmGpuSelection({ value: 'index:1', layerDir: '/x', reportPath: join(dir, 'r.tsv') }, {})).message).toBe(
        'SLFER_VK_DEVICE=index:1 matches none of the Vulkan devices: index:0 uuid:6d657361-3235-2e30-2e37-2d327e627000 "llvmpipe (LLVM 15.0.6, 256 bits)" (CPU)',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The layer for real: native/slfer-vk-device-select.c, loaded by the system's Vulkan loader under
// Dawn, on this machine's driver (Mesa 25's lavapipe on a CPU machine: one device, llvmpipe). Dawn
// runs in child processes: it holds the process, and each must exit by itself, cleanly. Gated by
// test/helpers/vk-layer-gate.ts.
const ROOT = join(import.meta.dirname, '..', '..');
const reason = vkLayerSkipReason();

it('the Vulkan layer tests run wherever the webgpu engine is required', () => {
  if (process.env.SLFER_REQUIRE_WEBGPU === '1') expect(reason || 'ready').toBe('ready');
});

interface Adapter {
  device: string;
  description: string;
  vendor: string;
}

/** Node running `code` (an ES module) in the repository, with the layer's loader variables and SLFER_VK_DEVICE=device. */
function child(code: string, device: string) {
  const env = { ...process.env, ...vkLayerEnv(process.env, vkLayerDir()), SLFER_VK_DEVICE: device };
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, env, encoding: 'utf8', timeout: 90_000 });
  const lines = r.stdout.trim().split('\n');
  return { status: r.status, signal: r.signal, stderr: r.stderr, out: JSON.parse(lines[lines.length - 1] || 'null') as unknown };
}

/** Plain Dawn, as any program would use it: the adapter it finds, and the layer's stderr lines. */
function dawn(device: string) {
  const r = child(
    `const { create, globals } = await import('webgpu');
     Object.assign(globalThis, globals);
     const a = await create([]).requestAdapter();
     console.log(JSON.stringify(a && { device: a.info.device, description: a.info.description, vendor: a.info.vendor }));`,
    device,
  );
  expect({ status: r.status, signal: r.signal }, r.stderr).toEqual({ status: 0, signal: null });
  return { adapter: r.out as Adapter | null, layer: r.stderr.split('\n').filter((l) => l.startsWith('VK_LAYER_SLFER_device_select:')) };
}

/** slfer-dist's own path: selectBackend('webgpu') from the compiled sources. */
function select(device: string) {
  if (!existsSync(join(ROOT, 'dist', 'src', 'engine', 'backend.js'))) throw new Error('dist/ is not built: run npx tsc (npm test does)');
  const r = child(
    `import { releaseEngine, selectBackend } from './dist/src/engine/backend.js';
     try {
       const e = await selectBackend('webgpu');
       await releaseEngine();
       console.log(JSON.stringify({ backend: e.backend, reason: e.reason }));
     } catch (e) {
       console.log(JSON.stringify({ code: e.code, message: e.message, hint: e.hint }));
     }`,
    device,
  );
  expect({ status: r.status, signal: r.signal }, r.stderr).toEqual({ status: 0, signal: null });
  return r.out as { backend?: string; reason?: string; code?: string; message?: string; hint?: string };
}

const words = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');
const LISTED = /^VK_LAYER_SLFER_device_select: {3}index:(\d+) uuid:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) pci:\S+ "(.*)" \(.*\)$/;

describe.runIf(!reason)(`the Vulkan layer under Dawn, on this machine's driver${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let first: Adapter;
  let devices: { index: number; uuid: string; name: string }[] = [];

  it('index:0 exposes the first device, and Dawn makes its adapter of it', () => {
    const r = dawn('index:0');
    expect(r.adapter).not.toBeNull();
    expect(r.layer).toEqual([]);
    first = r.adapter!;
  });

  it('a device that is not there: no adapter, and the layer lists every device with its UUID', () => {
    const r = dawn('index:4294967295');
    expect(r.adapter).toBeNull();
    expect(r.layer[0]).toMatch(/SLFER_VK_DEVICE=index:4294967295 matches none of the \d+ Vulkan devices/);
    devices = r.layer.slice(1).map((l) => {
      const m = LISTED.exec(l);
      expect(m, l).not.toBeNull();
      return { index: Number(m![1]), uuid: m![2], name: m![3] };
    });
    expect(devices.map((d) => d.index)).toEqual(devices.map((_, i) => i));
    expect(words(devices[0].name)).toContain(words(first.device));
    // The one past the last device (index:1 on a machine with lavapipe alone).
    const past = dawn(`index:${devices.length}`);
    expect(past.adapter).toBeNull();
    expect(past.layer.slice(1)).toEqual(r.layer.slice(1));
  });

  it("uuid: selects by the device's UUID, in nvidia-smi's spelling too", () => {
    expect(dawn(`uuid:${devices[0].uuid}`).adapter).toEqual(first);
    expect(dawn(`uuid:GPU-${devices[0].uuid.toUpperCase()}`).adapter).toEqual(first);
    const other = dawn('uuid:00000000-0000-0000-0000-000000000000');
    expect(other.adapter).toBeNull();
    expect(other.layer[0]).toContain('matches none');
  });

  it('a malformed value: the layer says so and exposes nothing', () => {
    const r = dawn('gpu1');
    expect(r.adapter).toBeNull();
    expect(r.layer[0]).toContain('SLFER_VK_DEVICE=gpu1 is malformed (expected uuid:<32 hex digits>, index:<n> or pci:');
  });

  it("selectBackend('webgpu'): the chosen device in the engine's reason; a typed error naming the value and the devices when nothing matches", () => {
    const ok = select(`uuid:GPU-${devices[0].uuid}`);
    expect(ok.backend).toBe('webgpu');
    expect(ok.reason).toContain(`SLFER_VK_DEVICE=uuid:GPU-${devices[0].uuid} chose Vulkan device index:0 uuid:${devices[0].uuid}`);
    const none = select(`index:${devices.length}`);
    expect(none.code).toBe('SLFER_GPU_SELECTION');
    expect(none.message).toContain(`SLFER_VK_DEVICE=index:${devices.length} matches none of the Vulkan devices`);
    for (const d of devices) expect(none.message).toContain(`index:${d.index} uuid:${d.uuid}`);
    expect(none.hint).toContain('one of those');
    const malformed = select('gpu1');
    expect(malformed.code).toBe('SLFER_GPU_SELECTION');
    expect(malformed.message).toContain('SLFER_VK_DEVICE=gpu1 names no device');
  });
});
