import { spawnSync } from 'node:child_process';
import { VK_DEVICE_ENV } from '../src/engine/gpu-select.js';
import { errors } from '../src/errors.js';

/**
 * Which GPU each worker of `launch --gpus N` gets. The GPUs come from nvidia-smi; a user's
 * CUDA_VISIBLE_DEVICES (indices or UUIDs) says which of them to use, in its order, as CUDA reads it.
 * Each worker is then pinned twice: CUDA_VISIBLE_DEVICES=<its UUID> for the tensorflow engine, and
 * SLFER_VK_DEVICE=uuid:<its UUID> for the webgpu engine, whose Vulkan driver ignores the former
 * (see src/engine/gpu-select.ts). UUIDs, not indices: CUDA's default device order can differ from
 * nvidia-smi's, a UUID names the same GPU for both.
 */
export interface Gpu {
  /** nvidia-smi's index (PCI bus order). */
  index: number;
  /** "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", equal to the Vulkan deviceUUID on NVIDIA. */
  uuid: string;
  /** "00000000:3B:00.0" */
  pciBusId: string;
  name: string;
}

/** The query launch runs; its output is what parseNvidiaSmi reads. */
export const NVIDIA_SMI_ARGS = ['--query-gpu=index,uuid,pci.bus_id,name', '--format=csv,noheader'];

/** `nvidia-smi --query-gpu=index,uuid,pci.bus_id,name --format=csv,noheader` output, one GPU a line. */
export function parseNvidiaSmi(text: string): Gpu[] {
  const gpus: Gpu[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [index, uuid, pciBusId, ...name] = line.split(',').map((f) => f.trim());
    if (!/^\d+$/.test(index ?? '') || !uuid || !pciBusId) continue; // not a GPU line (a warning, say)
    gpus.push({ index: Number(index), uuid, pciBusId, name: name.join(', ') });
  }
  return gpus;
}

/** This machine's GPUs, from nvidia-smi; none (with why) when it is missing or failing. */
export function queryGpus(): { gpus: Gpu[]; how: string } {
  const r = spawnSync('nvidia-smi', NVIDIA_SMI_ARGS, { encoding: 'utf8' });
  if (r.error || r.status !== 0) return { gpus: [], how: 'nvidia-smi not found or failing' };
  return { gpus: parseNvidiaSmi(r.stdout), how: 'nvidia-smi' };
}

const listGpus = (gpus: Gpu[]): string => (gpus.length ? gpus.map((g) => `${g.index} ${g.uuid} (${g.name})`).join(', ') : 'none');

/**
 * The GPU for each of `count` workers: CUDA_VISIBLE_DEVICES's GPUs in its order when it is set (an
 * entry is an nvidia-smi index, or a UUID or unique UUID prefix, with or without "GPU-"), else GPUs
 * 0..count-1. Throws SLFER_CLUSTER_DEVICES for an entry that names no GPU, a GPU named twice, or
 * more workers than GPUs.
 */
export function assignGpus(gpus: Gpu[], count: number, cudaVisibleDevices: string | undefined, how = 'nvidia-smi'): Gpu[] {
  let usable = [...gpus].sort((a, b) => a.index - b.index);
  if (cudaVisibleDevices !== undefined) {
    const value = cudaVisibleDevices;
    usable = [];
    for (const entry of value.split(',').map((e) => e.trim()).filter(Boolean)) {
      const found = /^\d+$/.test(entry)
        ? gpus.filter((g) => g.index === Number(entry))
        : gpus.filter((g) => g.uuid.toLowerCase().replace(/^gpu-/, '').startsWith(entry.toLowerCase().replace(/^gpu-/, '')));
      if (found.length !== 1) {
        throw errors.clusterVisibleDevicesInvalid(value, found.length ? `"${entry}" matches ${found.length} GPUs` : `"${entry}" names no GPU`, listGpus(gpus));
      }
      if (usable.includes(found[0])) throw errors.clusterVisibleDevicesInvalid(value, `GPU ${found[0].index} is listed twice`, listGpus(gpus));
      usable.push(found[0]);
    }
    how = `CUDA_VISIBLE_DEVICES=${value}, of ${gpus.length} from ${how}`;
  }
  if (count > usable.length) throw errors.clusterDevices(count, usable.length, how);
  return usable.slice(0, count);
}

/** The environment that pins a worker to its GPU, for both GPU engines. */
export function gpuEnv(gpu: Gpu): Record<string, string> {
  return { CUDA_VISIBLE_DEVICES: gpu.uuid, [VK_DEVICE_ENV]: `uuid:${gpu.uuid}` };
}

/**
 * The GPU of a rank that a launcher started (one process per rank): the visible GPUs' `localRank`-th,
 * as launch --gpus gives its own workers. When the launcher has already pinned the process to one
 * GPU (CUDA_VISIBLE_DEVICES with a single entry: srun --gpus-per-task, Kubernetes device plugins),
 * that one, whatever the local rank.
 */
export function gpuOfLocalRank(gpus: Gpu[], localRank: number, cudaVisibleDevices: string | undefined, how = 'nvidia-smi'): Gpu {
  const listed = cudaVisibleDevices?.split(',').filter((e) => e.trim()).length;
  if (listed === 1) return assignGpus(gpus, 1, cudaVisibleDevices, how)[0];
  return assignGpus(gpus, localRank + 1, cudaVisibleDevices, how)[localRank];
}
