import { describe, expect, it } from 'vitest';
import { assignGpus, gpuEnv, parseNvidiaSmi } from '../../cluster/gpus.js';
import { thrown } from '../helpers/thrown.js';

// What `nvidia-smi --query-gpu=index,uuid,pci.bus_id,name --format=csv,noheader` prints on a
// 4-GPU node (UUIDs made up in nvidia-smi's format).
const SMI = `0, GPU-1b2c3d4e-0000-1111-2222-333344445555, 00000000:18:00.0, NVIDIA H200
1, GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff, 00000000:2A:00.0, NVIDIA H200
2, GPU-1b2cffff-0000-1111-2222-333344445555, 00000000:3A:00.0, NVIDIA H200
3, GPU-77777777-8888-9999-aaaa-bbbbccccdddd, 00000000:5D:00.0, NVIDIA H200
`;
const gpus = parseNvidiaSmi(SMI);
describe('nvidia-smi output', () => {
  it('parses one GPU a line: index, UUID, PCI bus id and name', () => {
    expect(gpus).toHaveLength(4);
    expect(gpus[1]).toEqual({ index: 1, uuid: 'GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff', pciBusId: '00000000:2A:00.0', name: 'NVIDIA H200' });
  });

  it('keeps a name with commas whole and skips lines that are not GPUs', () => {
    const g = parseNvidiaSmi('Warning: persistence mode is off\r\n0, GPU-aa, 00000000:01:00.0, Some GPU, Rev 2\r\n\n');
    expect(g).toEqual([{ index: 0, uuid: 'GPU-aa', pciBusId: '00000000:01:00.0', name: 'Some GPU, Rev 2' }]);
  });

  it('gives nothing for empty output', () => {
    expect(parseNvidiaSmi('')).toEqual([]);
  });
});

describe('GPU per worker', () => {
  it('without CUDA_VISIBLE_DEVICES: GPUs 0..N-1', () => {
    expect(assignGpus(gpus, 2, undefined).map((g) => g.index)).toEqual([0, 1]);
    expect(assignGpus([...gpus].reverse(), 4, undefined).map((g) => g.index)).toEqual([0, 1, 2, 3]);
  });

  it('CUDA_VISIBLE_DEVICES as indices: those GPUs, in its order', () => {
    expect(assignGpus(gpus, 2, '3,1').map((g) => g.index)).toEqual([3, 1]);
    expect(assignGpus(gpus, 1, ' 2 , 0').map((g) => g.index)).toEqual([2]);
  });

  it('CUDA_VISIBLE_DEVICES as UUIDs, whole or a unique prefix, with or without GPU-', () => {
    expect(assignGpus(gpus, 2, 'GPU-77777777-8888-9999-aaaa-bbbbccccdddd,9f8e7d6c').map((g) => g.index)).toEqual([3, 1]);
    expect(assignGpus(gpus, 1, 'gpu-1B2CF').map((g) => g.index)).toEqual([2]);
  });

  it('refuses more workers than visible GPUs, saying where the count came from', () => {
    const e = thrown(() => assignGpus(gpus, 3, '0,1'));
    expect(e.code).toBe('SLFER_CLUSTER_DEVICES');
    expect(e.message).toContain('--gpus 3');
    expect(e.message).toContain('CUDA_VISIBLE_DEVICES=0,1');
    expect(e.hint).toContain('--gpus 2');
    expect(thrown(() => assignGpus(gpus, 5, undefined)).message).toMatch(/\(4, from nvidia-smi\)/);
    expect(thrown(() => assignGpus(gpus, 1, '')).code).toBe('SLFER_CLUSTER_DEVICES');
    expect(thrown(() => assignGpus([], 1, undefined, 'nvidia-smi not found or failing')).message).toContain('nvidia-smi not found');
  });

  it('refuses an entry that names no GPU, an ambiguous prefix and a GPU listed twice, listing the GPUs', () => {
    const none = thrown(() => assignGpus(gpus, 1, '7'));
    expect(none.code).toBe('SLFER_CLUSTER_DEVICES');
    expect(none.message).toContain('"7" names no GPU');
    expect(none.message).toContain('3 GPU-77777777-8888-9999-aaaa-bbbbccccdddd (NVIDIA H200)');
    expect(thrown(() => assignGpus(gpus, 1, 'GPU-1b2c')).message).toContain('"GPU-1b2c" matches 2 GPUs');
    expect(thrown(() => assignGpus(gpus, 2, '1,GPU-9f8e7d6c')).message).toContain('GPU 1 is listed twice');
    expect(thrown(() => assignGpus(gpus, 1, 'MIG-0d6b2d4c-aaaa')).message).toContain('names no GPU');
  });

  it('pins a worker by UUID for both GPU engines', () => {
    expect(gpuEnv(gpus[3])).toEqual({
      CUDA_VISIBLE_DEVICES: 'GPU-77777777-8888-9999-aaaa-bbbbccccdddd',
      SLFER_VK_DEVICE: 'uuid:GPU-77777777-8888-9999-aaaa-bbbbccccdddd',
    });
  });
});
