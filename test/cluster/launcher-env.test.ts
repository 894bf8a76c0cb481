import { describe, expect, it } from 'vitest';
import { captured } from '../helpers/launchers.js';
import { detectLauncher, firstSlurmHost } from '../../cluster/launcher-env.js';
import { thrown } from '../helpers/thrown.js';


// Slurm 22.05's srun, task 3 of 4 on the second of two nodes (as its documentation lists them).
const SRUN = { SLURM_JOB_ID: '17', SLURM_STEP_ID: '0', SLURM_PROCID: '3', SLURM_NTASKS: '4', SLURM_LOCALID: '1', SLURM_NODEID: '1', SLURM_NNODES: '2', SLURM_JOB_NODELIST: 'node[07-08]', SLURM_STEP_NODELIST: 'node[07-08]' };

describe('launcher detection, from the environment each launcher sets', () => {
  it('torchrun (captured): rank, local rank, node and rank 0 address', () => {
    expect(detectLauncher(captured('torchrun-rank1.env'))).toEqual({ launcher: 'torchrun', rank: 1, worldSize: 2, localRank: 1, localWorldSize: 2, nodeRank: 0, nodes: 1, masterAddr: '127.0.0.1', masterPort: 29500 });
  });

  it('Open MPI and MPICH (captured)', () => {
    expect(detectLauncher(captured('openmpi-rank1.env'))).toEqual({ launcher: 'openmpi', rank: 1, worldSize: 2, localRank: 1, localWorldSize: 2 });
    expect(detectLauncher(captured('mpich-rank1.env'))).toEqual({ launcher: 'mpich', rank: 1, worldSize: 2, localRank: 1, localWorldSize: 2 });
  });

  it("srun: the task's rank and node, rank 0 on the first host of the node list", () => {
    expect(detectLauncher(SRUN)).toEqual({ launcher: 'slurm', rank: 3, worldSize: 4, localRank: 1, nodeRank: 1, nodes: 2, masterAddr: 'node07' });
    expect(firstSlurmHost('gpu[01,03-04],cpu1')).toBe('gpu01');
    expect(firstSlurmHost('n1,n2')).toBe('n1');
  });

  it('Kubeflow PyTorchJob and Trainer v2, an Indexed Job, plain SLFER_* variables', () => {
    expect(detectLauncher({ RANK: '2', WORLD_SIZE: '3', MASTER_ADDR: 'job-master-0', MASTER_PORT: '23456' })).toMatchObject({ launcher: 'kubeflow', rank: 2, worldSize: 3, masterAddr: 'job-master-0', masterPort: 23456 });
    expect(detectLauncher({ PET_NODE_RANK: '1', PET_NNODES: '2', PET_MASTER_ADDR: 'trainer-node-0-0.trainer', PET_MASTER_PORT: '29400' })).toMatchObject({ launcher: 'kubeflow-trainer', rank: 1, worldSize: 2 });
    expect(detectLauncher({ JOB_COMPLETION_INDEX: '4', SLFER_WORLD_SIZE: '8', SLFER_MASTER_ADDR: 'js-w-0-0.js' })).toMatchObject({ launcher: 'indexed-job', rank: 4, worldSize: 8, masterAddr: 'js-w-0-0.js' });
    expect(detectLauncher({ SLFER_RANK: '0', SLFER_WORLD_SIZE: '2', SLFER_MASTER_ADDR: '10.0.0.1', SLFER_MASTER_PORT: '7000' })).toMatchObject({ launcher: 'slfer', rank: 0, worldSize: 2, masterAddr: '10.0.0.1', masterPort: 7000 });
    expect(detectLauncher({ PATH: '/usr/bin', HOME: '/root' })).toBeUndefined();
  });

  it('an inner launcher wins over an outer one (mpirun or torchrun inside an sbatch script or an srun step)', () => {
    const batch = { SLURM_JOB_ID: '17', SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_JOB_NODELIST: 'node[07-08]' };
    expect(detectLauncher({ ...batch, ...captured('openmpi-rank1.env') })?.launcher).toBe('openmpi');
    // srun started one torchrun per node (2 tasks); torchrun's world is 4 processes: different worlds, torchrun wins.
    expect(detectLauncher({ ...SRUN, SLURM_NTASKS: '2', SLURM_PROCID: '1', ...captured('torchrun-rank1.env'), WORLD_SIZE: '4', RANK: '3' })?.launcher).toBe('torchrun');
    // The batch script alone (no job step) is not a launch.
    expect(detectLauncher(batch)).toBeUndefined();
  });

  it('two launchers describing the same world with different ranks disagree: an error naming both', () => {
    const e = thrown(() => detectLauncher({ ...captured('openmpi-rank1.env'), SLFER_RANK: '0', SLFER_WORLD_SIZE: '2' }));
    expect(e.code).toBe('SLFER_INVALID_ARGUMENT');
    expect(e.message).toContain('slfer says this process is rank 0 of 2, openmpi says rank 1 of 2');
  });

  it('refuses malformed values naming the variable, and a rank outside the world', () => {
    expect(thrown(() => detectLauncher({ OMPI_COMM_WORLD_RANK: 'one', OMPI_COMM_WORLD_SIZE: '2' })).message).toContain('OMPI_COMM_WORLD_RANK: is "one"');
    expect(thrown(() => detectLauncher({ SLFER_RANK: '2', SLFER_WORLD_SIZE: '2' })).message).toContain('rank 2 of 2');
    expect(thrown(() => detectLauncher({ JOB_COMPLETION_INDEX: '1' })).hint).toContain('SLFER_WORLD_SIZE');
  });
});
