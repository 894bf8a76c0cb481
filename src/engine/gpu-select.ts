import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { errors } from '../errors.js';
import { nativeBuildDir } from './native/build-dir.js';

/**
 * Which GPU the webgpu engine opens. Dawn chooses an adapter only by name or power preference, and
 * NVIDIA's Vulkan driver ignores CUDA_VISIBLE_DEVICES, so on N identical GPUs every process would
 * open the first. SLFER_VK_DEVICE names one device; slfer-dist then has the Vulkan loader insert
 * VK_LAYER_SLFER_device_select (native/slfer-vk-device-select.c, built into build/vk-layer/), which
 * hides every other device from Dawn. `launch --gpus` sets it per worker to its GPU's UUID.
 */
export const VK_DEVICE_ENV = 'SLFER_VK_DEVICE';
export const VK_LAYER_NAME = 'VK_LAYER_SLFER_device_select';
/** Where the layer writes what it chose (native/slfer-vk-device-select.c). */
const REPORT_ENV = 'SLFER_VK_DEVICE_REPORT';

export type VkDeviceSelector = { by: 'uuid'; uuid: string } | { by: 'index'; index: number } | { by: 'pci'; address: string };

/**
 * SLFER_VK_DEVICE's grammar, the layer's own: `uuid:` 32 hex digits (dashes and nvidia-smi's `GPU-`
 * prefix allowed), `index:N`, or `pci:[domain:]bus:device.function`. Checked here so a typo is a
 * clear error before Dawn starts, not a GPU-less engine. Throws SLFER_GPU_SELECTION.
 */
export function parseVkDevice(value: string): VkDeviceSelector {
  const [, by, arg] = /^([a-z]+):(.*)$/.exec(value) ?? [];
  if (by === 'index' && /^\d{1,10}$/.test(arg) && Number(arg) <= 0xffffffff) return { by, index: Number(arg) };
  if (by === 'uuid') {
    const hex = arg.replace(/^GPU-/i, '').replace(/-/g, '');
    if (/^[0-9a-f]{32}$/i.test(hex)) return { by, uuid: hex.toLowerCase() };
  }
  if (by === 'pci') {
    const m = /^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i.exec(arg);
    if (m && parseInt(m[3], 16) <= 0x1f) {
      const address = `${(m[1] ?? '0').padStart(4, '0')}:${m[2].padStart(2, '0')}:${m[3].padStart(2, '0')}.${m[4]}`.toLowerCase();
      return { by, address };
    }
  }
  throw errors.gpuSelectionInvalid(value);
}

/** The folder holding the layer and its manifest, as scripts/build-native.mjs writes them. */
export function vkLayerDir(): string {
  return join(nativeBuildDir(), 'vk-layer');
}

const prepend = (entry: string, list: string | undefined, sep: string): string => {
  const items = (list ?? '').split(sep).filter((x) => x && x !== entry);
  return [entry, ...items].join(sep);
};

/**
 * The variables that make the Vulkan loader run the layer, given the current environment:
 * - VK_ADD_LAYER_PATH gets the layer's folder (searched besides the standard ones); VK_LAYER_PATH,
 *   which replaces them, only when the user has set it already (it then has to hold the folder);
 * - VK_INSTANCE_LAYERS enables the layer (explicit layers run only on request);
 * - NODEVICE_SELECT=1 turns off Mesa's implicit device-select layer: with one device left it has
 *   nothing to reorder, and Mesa 25.0's crashes the process when the layer below returns none.
 */
export function vkLayerEnv(env: NodeJS.ProcessEnv, layerDir: string): Record<string, string> {
  const vars: Record<string, string> = {
    VK_ADD_LAYER_PATH: prepend(layerDir, env.VK_ADD_LAYER_PATH, delimiter),
    VK_INSTANCE_LAYERS: prepend(VK_LAYER_NAME, env.VK_INSTANCE_LAYERS, delimiter),
    NODEVICE_SELECT: '1',
  };
  if (env.VK_LAYER_PATH) vars.VK_LAYER_PATH = prepend(layerDir, env.VK_LAYER_PATH, delimiter);
  return vars;
}

export interface LayerDevice {
  index: number;
  /** 8-4-4-4-12 hex, or '-' where the device has none. */
  uuid: string;
  /** domain:bus:device.function, or '-' without VK_EXT_pci_bus_info. */
  pci: string;
  type: string;
  name: string;
}

export interface LayerReport {
  selection: string;
  /** Index of the device it exposed, 'none' when nothing matched, 'invalid' for a malformed value. */
  chosen: number | 'none' | 'invalid';
  devices: LayerDevice[];
}

/** The layer's report file: tab-separated `selection`, `chosen` and one `device` line per device. */
export function parseLayerReport(text: string): LayerReport {
  const report: LayerReport = { selection: '', chosen: 'none', devices: [] };
  for (const line of text.split('\n')) {
    const f = line.split('\t');
    if (f[0] === 'selection') report.selection = f[1] ?? '';
    else if (f[0] === 'chosen') report.chosen = f[1] === 'none' || f[1] === 'invalid' ? f[1] : Number(f[1]);
    else if (f[0] === 'device' && f.length >= 6) {
      report.devices.push({ index: Number(f[1]), uuid: f[2], pci: f[3], type: f[4], name: f.slice(5).join('\t') });
    }
  }
  return report;
}

/** A device as the values that would select it, then its name. */
const describeDevice = (d: LayerDevice): string => `index:${d.index} uuid:${d.uuid}${d.pci === '-' ? '' : ` pci:${d.pci}`} "${d.name}" (${d.type})`;

export interface GpuSelection {
  value: string;
  layerDir: string;
  reportPath: string;
}

/**
 * Before Dawn's create(): when SLFER_VK_DEVICE is set, checks it and the layer and points the
 * Vulkan loader at the layer, in this process's environment (the loader reads it when Dawn creates
 * its Vulkan instance). Returns undefined when no device is named.
 */
export function prepareGpuSelection(env: NodeJS.ProcessEnv = process.env, layerDir = vkLayerDir()): GpuSelection | undefined {
  const value = env[VK_DEVICE_ENV];
  if (!value) return undefined;
  parseVkDevice(value);
  const manifest = join(layerDir, `${VK_LAYER_NAME.replace(/^VK_LAYER_/, 'VkLayer_')}.json`);
  if (!existsSync(manifest)) throw errors.gpuSelectionLayerMissing(value, manifest);
  const reportPath = join(tmpdir(), `slfer-vk-device-${process.pid}-${Date.now()}.tsv`);
  Object.assign(env, vkLayerEnv(env, layerDir), { [REPORT_ENV]: reportPath });
  return { value, layerDir, reportPath };
}

/**
 * After Dawn's requestAdapter(): what the layer chose, as one line for the engine's reason. Throws
 * SLFER_GPU_SELECTION when the layer did not run (whatever adapter Dawn found could be any GPU) or
 * when nothing matched (the message lists the devices there are).
 */
export function confirmGpuSelection(sel: GpuSelection, env: NodeJS.ProcessEnv = process.env): string {
  delete env[REPORT_ENV];
  let text: string;
  try {
    text = readFileSync(sel.reportPath, 'utf8');
  } catch {
    throw errors.gpuSelectionLayerNotLoaded(sel.value, sel.layerDir);
  }
  rmSync(sel.reportPath, { force: true });
  const report = parseLayerReport(text);
  const chosen = typeof report.chosen === 'number' ? report.devices.find((d) => d.index === report.chosen) : undefined;
  if (!chosen) throw errors.gpuSelectionNoMatch(sel.value, report.devices.map(describeDevice));
  return `${VK_DEVICE_ENV}=${sel.value} chose Vulkan device ${describeDevice(chosen)} of ${report.devices.length}`;
}
