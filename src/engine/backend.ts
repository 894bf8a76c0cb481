import * as tf from '@tensorflow/tfjs';
import { errors } from '../errors.js';
import type { BackendRequest } from './backend-names.js';
import { confirmGpuSelection, prepareGpuSelection, type GpuSelection } from './gpu-select.js';
import { registerKernels, slferKernels } from './kernels/register.js';
import type { WebgpuUtil } from './kernels/webgpu-program.js';
import { loadNativeKernels } from './native/addon.js';

export { BACKENDS, type BackendRequest } from './backend-names.js';

export interface Engine {
  /** tfjs backend name now active: 'tensorflow', 'webgpu', 'wasm' or 'cpu'. */
  backend: string;
  /** Why this backend: one line, for logs and reports. */
  reason: string;
  /** Why each faster backend was passed over (auto only). */
  passedOver: { backend: string; reason: string }[];
  /** wasm only: what runs its convolutions, e.g. "oneDNN 2.6.3, 2 threads (native)" or "XNNPACK (…)". */
  convolutions?: string;
  /** webgpu: slfer-dist's WGSL kernels in use (none with SLFER_WEBGPU_KERNELS=tfjs but the fixes). */
  kernels?: string[];
}

/** wasm's convolutions: oneDNN through the native kernels when built, else XNNPACK with the reason. */
function wasmConvolutions(): string {
  const n = loadNativeKernels();
  return n.ok ? `${n.kernels.info()} (native)` : `XNNPACK (native kernels unavailable: ${n.reason})`;
}

interface Probe {
  ok: boolean;
  reason: string;
}

/**
 * The native TensorFlow engine. Optional: its install downloads libtensorflow (CUDA 11.2 + cuDNN 8.1
 * for the GPU build), which fails on machines without that host, so it is loaded only on demand.
 */
async function probeTensorflow(): Promise<Probe> {
  const tried: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
      if (tf.findBackend('tensorflow')) return { ok: true, reason: `${pkg} loaded` };
      tried.push(`${pkg} loaded but registered no "tensorflow" backend`);
    } catch (e) {
      tried.push(notInstalled(e, pkg) ? `${pkg} is not installed` : `${pkg}: ${firstLine(e)}`);
    }
  }
  return { ok: false, reason: tried.join('; ') };
}

/** What the npm package `webgpu` (Dawn) exports. */
type DawnModule = { create: (flags: string[]) => unknown; globals: object };
type DawnAdapter = { info?: { description?: string; device?: string; type?: string } };
type DawnGpu = { requestAdapter(o: object): Promise<DawnAdapter | null> };
let dawnInstance: { gpu: DawnGpu; selection?: GpuSelection; selected?: string } | undefined;

/**
 * The process's one Dawn instance, installed as navigator.gpu for tfjs-backend-webgpu, with the GPU
 * selection (gpu-select.ts) it was made under. Never a second: dawn.node 0.6.2 schedules event
 * processing for each instance on the JS loop, and an instance collected with such a callback
 * pending aborts the process (InstanceBase::ProcessEvents on a destroyed mutex; seen about one run
 * in six under CPU load when each probe created its own).
 */
function dawnGpu(dawn: DawnModule): NonNullable<typeof dawnInstance> {
  if (!dawnInstance) {
    const selection = prepareGpuSelection();
    Object.assign(globalThis, dawn.globals);
    dawnInstance = { gpu: dawn.create([]) as DawnGpu, selection };
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: dawnInstance.gpu }, configurable: true });
  }
  return dawnInstance;
}

/**
 * WebGPU through Dawn (npm package `webgpu`); a CPU adapter (lavapipe, SwiftShader) does not count as
 * a GPU. A device named by SLFER_VK_DEVICE (gpu-select.ts) is a demand, not a preference: when it
 * cannot be honoured this throws SLFER_GPU_SELECTION instead of falling back to another device.
 */
async function probeWebgpu(requireHardware: boolean): Promise<Probe> {
  let dawn: DawnModule;
  try {
    dawn = (await import('webgpu' as string)) as DawnModule;
  } catch (e) {
    return { ok: false, reason: notInstalled(e, 'webgpu') ? 'the Dawn package "webgpu" is not installed' : `"webgpu" failed to load: ${firstLine(e)}` };
  }
  const instance = dawnGpu(dawn);
  const { gpu, selection } = instance;
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  // The layer reports once, when Dawn makes its Vulkan instance; later probes reuse that answer.
  if (selection && instance.selected === undefined) instance.selected = `; ${confirmGpuSelection(selection)}`;
  const selected = instance.selected ?? '';
  if (!adapter) return { ok: false, reason: `no WebGPU adapter (${selection ? `Dawn made none of the ${selected.slice(2)}` : 'no Vulkan/Metal/D3D12 driver found'})` };
  const desc = `${adapter.info?.description ?? ''} ${adapter.info?.device ?? ''}`.trim();
  if (requireHardware && /llvmpipe|lavapipe|swiftshader|cpu/i.test(`${desc} ${adapter.info?.type ?? ''}`)) {
    return { ok: false, reason: `the only WebGPU adapter runs on the CPU (${desc}${selected})` };
  }
  await import('@tensorflow/tfjs-backend-webgpu');
  return { ok: true, reason: `adapter ${desc || 'found'}${selected}` };
}

/**
 * tfjs-backend-webgpu's webgpu_util, which slfer-dist's WGSL kernels need. Node's ESM loader names
 * the CommonJS build's exports; a bundle (the GPU machine's .gpu/, esbuild) hands the module over as
 * `default` only, and without this the engine silently ran on tfjs's own slow kernels there.
 */
async function webgpuUtilModule(): Promise<WebgpuUtil> {
  const mod = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as { webgpu_util?: WebgpuUtil; default?: { webgpu_util?: WebgpuUtil } };
  const util = mod.webgpu_util ?? mod.default?.webgpu_util;
  if (!util) throw new Error('@tensorflow/tfjs-backend-webgpu exports no webgpu_util: slfer-dist\'s webgpu kernels need it (is the version 4.22?)');
  return util;
}

async function activate(name: string): Promise<void> {
  // tfjs-backend-cpu prints an advert for tfjs-node on first use; slfer-dist logs its engine choice itself.
  const cpu = tf.findBackend('cpu') as { firstUse?: boolean } | null;
  if (cpu) cpu.firstUse = false;
  if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  const webgpuUtil = name === 'webgpu' ? await webgpuUtilModule() : undefined;
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`tf.setBackend('${name}') failed`);
  await tf.ready();
  registerKernels(name, { webgpuUtil });
}

const REMEDY: Record<string, string> = {
  tensorflow:
    'install @tensorflow/tfjs-node-gpu (CUDA 11.2 + cuDNN 8.1) or @tensorflow/tfjs-node on a machine that can reach its libtensorflow download, or use --backend auto',
  webgpu: 'install the npm package "webgpu" and a Vulkan/Metal/D3D12 driver, or use --backend auto',
};

/**
 * Makes a tfjs backend current. `auto` takes the fastest that can train here, in this order:
 * native TensorFlow, WebGPU on a hardware adapter, then wasm, which trains with the kernels
 * slfer-dist registers for it (src/engine/kernels; convolutions on oneDNN where the native kernels
 * are built, on XNNPACK otherwise); the plain-JS cpu backend is the
 * numerical reference, never chosen by auto.
 */
export async function selectBackend(request: BackendRequest): Promise<Engine> {
  const passedOver: Engine['passedOver'] = [];
  if (request === 'auto') {
    const tfProbe = await probeTensorflow();
    if (tfProbe.ok) {
      await activate('tensorflow');
      return { backend: 'tensorflow', reason: `auto: ${tfProbe.reason}`, passedOver };
    }
    passedOver.push({ backend: 'tensorflow', reason: tfProbe.reason });
    const gpuProbe = await probeWebgpu(true);
    if (gpuProbe.ok) {
      await activate('webgpu');
      return { backend: 'webgpu', reason: `auto: ${gpuProbe.reason}`, passedOver, kernels: slferKernels('webgpu') };
    }
    passedOver.push({ backend: 'webgpu', reason: gpuProbe.reason });
    await activate('wasm');
    return { backend: 'wasm', reason: 'auto: fastest CPU backend (slfer-dist adds the kernels it lacks for training)', passedOver, convolutions: wasmConvolutions() };
  }
  if (request === 'tensorflow') {
    const p = await probeTensorflow();
    if (!p.ok) throw errors.engineUnavailable('tensorflow', p.reason, REMEDY.tensorflow);
    await activate('tensorflow');
    return { backend: 'tensorflow', reason: `requested; ${p.reason}`, passedOver };
  }
  if (request === 'webgpu') {
    const p = await probeWebgpu(false);
    if (!p.ok) throw errors.engineUnavailable('webgpu', p.reason, REMEDY.webgpu);
    await activate('webgpu');
    return { backend: 'webgpu', reason: `requested; ${p.reason}`, passedOver, kernels: slferKernels('webgpu') };
  }
  if (request === 'wasm') {
    await activate('wasm');
    return { backend: 'wasm', reason: 'requested', passedOver, convolutions: wasmConvolutions() };
  }
  await activate('cpu');
  return { backend: 'cpu', reason: 'requested', passedOver };
}

/**
 * Lets the engine finish and let go of its device before the process exits. Dawn can crash when
 * a process exits with GPU work still queued or a device still open, so webgpu waits for its queue
 * and destroys the device; the other engines have nothing to release.
 */
export async function releaseEngine(): Promise<void> {
  if (!tf.findBackend('webgpu')) return;
  const backend = tf.findBackend('webgpu') as unknown as { device?: { queue: { onSubmittedWorkDone(): Promise<void> }; destroy(): void } };
  const device = backend.device;
  if (device) await device.queue.onSubmittedWorkDone();
  tf.removeBackend('webgpu');
  device?.destroy();
}

function notInstalled(e: unknown, pkg: string): boolean {
  return (e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(`'${pkg}'`);
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0].slice(0, 200);
}
