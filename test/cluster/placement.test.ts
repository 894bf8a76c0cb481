import { describe, expect, it } from 'vitest';
import { captured } from '../helpers/launchers.js';
import { advertiseAddress } from '../../cluster/advertise.js';
import { gpuOfLocalRank, type Gpu } from '../../cluster/gpus.js';
import { DEFAULT_RDZV_PORT, parseEndpoint, resolvePlacement, runIdentity } from '../../cluster/placement.js';
import { rejected, thrown } from '../helpers/thrown.js';

const SRUN = { SLURM_JOB_ID: '17', SLURM_STEP_ID: '2', SLURM_PROCID: '3', SLURM_NTASKS: '4', SLURM_LOCALID: '1', SLURM_NODEID: '1', SLURM_NNODES: '2', SLURM_JOB_NODELIST: 'node[07-08]', SLURM_STEP_NODELIST: 'node[07-08]' };

describe('placement: where this launch process sits in the run', () => {
  it('local by default: this process forks every worker and hosts the coordinator', () => {
    expect(resolvePlacement({ workers: 3 }, {})).toMatchObject({ mode: 'local', worldSize: 3, localRanks: [0, 1, 2], multiMachine: false, coordinator: true });
    expect(resolvePlacement({}, {}).worldSize).toBe(2);
  });

  it('agents: --nnodes/--node-rank/--nproc-per-node give the global ranks of this node; node 0 hosts the coordinator', () => {
    const p = resolvePlacement({ nnodes: 2, nodeRank: 1, nprocPerNode: 4, rdzvEndpoint: 'node07:29400' }, {});
    expect(p).toMatchObject({ mode: 'agent', worldSize: 8, localRanks: [4, 5, 6, 7], multiMachine: true, host: 'node07', port: 29400, coordinator: false });
    expect(resolvePlacement({ nnodes: 2, nodeRank: 0, gpus: 2, rdzvEndpoint: '[fd00::1]:29400' }, {})).toMatchObject({ host: 'fd00::1', localRanks: [0, 1], coordinator: true });
    // Node 0 at loopback: all "nodes" are this machine.
    expect(resolvePlacement({ nnodes: 2, nodeRank: 0, rdzvEndpoint: '127.0.0.1:29400' }, {}).multiMachine).toBe(false);
  });

  it('names what is missing or contradictory', () => {
    expect(thrown(() => resolvePlacement({ nnodes: 2, rdzvEndpoint: 'a:1' }, {})).message).toContain('--node-rank');
    expect(thrown(() => resolvePlacement({ nnodes: 2, nodeRank: 2, rdzvEndpoint: 'a:1' }, {})).hint).toContain('0..1');
    expect(thrown(() => resolvePlacement({ nnodes: 2, nodeRank: 0 }, {})).message).toContain('--rdzv-endpoint: is missing');
    expect(thrown(() => resolvePlacement({ nnodes: 2, nodeRank: 0, rdzvEndpoint: 'nocolon' }, {})).message).toContain('is not HOST:PORT');
    expect(thrown(() => resolvePlacement({ nodeRank: 1 }, {})).message).toContain('--node-rank: was given without --nnodes');
    expect(thrown(() => resolvePlacement({ nnodes: 2, nodeRank: 0, rdzvEndpoint: 'a:1' }, SRUN)).message).toContain('slurm already started this process as rank 3 of 4');
    expect(thrown(() => resolvePlacement({ workers: 2 }, SRUN)).hint).toContain('under a launcher each process is one rank');
    expect(thrown(() => parseEndpoint('h:70000')).message).toContain('is not HOST:PORT');
  });

  it('under srun: one rank, rank 0 on the first host of the node list, the port from --rdzv-endpoint or the default', () => {
    expect(resolvePlacement({}, SRUN)).toMatchObject({ mode: 'rank', launcher: 'slurm', rank: 3, localRank: 1, worldSize: 4, localRanks: [3], host: 'node07', port: DEFAULT_RDZV_PORT, multiMachine: true, coordinator: false });
    expect(resolvePlacement({ rdzvEndpoint: 'node07:31000' }, SRUN)).toMatchObject({ host: 'node07', port: 31000 });
    expect(runIdentity(resolvePlacement({}, SRUN), SRUN)).toEqual({ runId: '17', attempt: 2 });
  });

  it('under torchrun (captured): the port after torchrun\'s own store; its restart count is the attempt', () => {
    const env = { ...captured('torchrun-rank1.env'), TORCHELASTIC_RESTART_COUNT: '1' };
    const p = resolvePlacement({}, env);
    expect(p).toMatchObject({ mode: 'rank', launcher: 'torchrun', rank: 1, host: '127.0.0.1', port: 29501, multiMachine: false });
    expect(runIdentity(p, env).attempt).toBe(1);
  });

  it('under mpirun (captured): one machine needs no address; across machines one must be given', () => {
    expect(resolvePlacement({}, captured('openmpi-rank1.env'))).toMatchObject({ mode: 'rank', launcher: 'openmpi', host: '127.0.0.1', multiMachine: false });
    const twoNodes = { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_LOCAL_RANK: '0', OMPI_COMM_WORLD_LOCAL_SIZE: '1' };
    const e = thrown(() => resolvePlacement({}, twoNodes));
    expect(e.message).toContain('openmpi does not say where rank 0 runs');
    expect(e.hint).toContain('--rdzv-endpoint');
    expect(resolvePlacement({ rdzvEndpoint: 'n1:29500' }, twoNodes)).toMatchObject({ host: 'n1', port: 29500, multiMachine: true });
  });
});

describe('advertised address', () => {
  it('SLFER_ADVERTISE_ADDR wins, but never a loopback one; a route through loopback is refused', async () => {
    expect(await advertiseAddress('10.1.2.3', { SLFER_ADVERTISE_ADDR: '10.0.0.9' })).toBe('10.0.0.9');
    expect((await rejected(advertiseAddress('10.1.2.3', { SLFER_ADVERTISE_ADDR: '127.0.0.1' }))).message).toContain('loopback');
    expect((await rejected(advertiseAddress('127.0.0.1', {}))).message).toContain('leaves through loopback');
  });
});

describe("a launched rank's GPU", () => {
  const gpus: Gpu[] = [0, 1, 2, 3].map((index) => ({ index, uuid: `GPU-${index}`, pciBusId: '', name: 'H200' }));
  it('is the local rank-th visible GPU, or the one GPU the launcher left visible', () => {
    expect(gpuOfLocalRank(gpus, 2, undefined).index).toBe(2);
    expect(gpuOfLocalRank(gpus, 1, '3,1').index).toBe(1);
    expect(gpuOfLocalRank(gpus, 3, '2').index).toBe(2);
    expect(thrown(() => gpuOfLocalRank(gpus, 2, '0,1')).code).toBe('SLFER_CLUSTER_DEVICES');
  });
});
