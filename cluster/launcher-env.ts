/**
 * Which launcher started this process, and what it says this process is: its rank among how many,
 * its place on its node, and where rank 0 is. Read from the environment each launcher sets
 * (torchrun, Slurm's srun, Open MPI, MPICH, Kubeflow's PyTorchJob and Trainer, a Kubernetes Indexed
 * Job, or slfer-dist's own SLFER_* variables), as Lightning's cluster environments do.
 *
 * Order of precedence, first match wins (an inner launcher runs inside an outer one: mpirun or
 * torchrun inside an sbatch script still sees the batch step's SLURM_* variables):
 *   1. SLFER_RANK / SLFER_WORLD_SIZE: the user said so;
 *   2. torchrun (TORCHELASTIC_RUN_ID);
 *   3. Open MPI (OMPI_COMM_WORLD_RANK);
 *   4. MPICH Hydra (PMI_RANK);
 *   5. Slurm srun (SLURM_PROCID within a job step: SLURM_STEP_ID set);
 *   6. Kubeflow Trainer v2 (PET_NODE_RANK), then PyTorchJob (RANK, WORLD_SIZE, MASTER_ADDR);
 *   7. a Kubernetes Indexed Job or JobSet (JOB_COMPLETION_INDEX, with SLFER_WORLD_SIZE or PET_NNODES).
 * Two launchers that describe the same world (the same size) but give this process different ranks
 * disagree: that is an error naming both, not a guess.
 */
import { errors } from '../src/errors.js';

export const LAUNCHERS = ['slfer', 'torchrun', 'openmpi', 'mpich', 'slurm', 'kubeflow-trainer', 'kubeflow', 'indexed-job'] as const;
export type Launcher = (typeof LAUNCHERS)[number];

export interface LaunchEnvironment {
  launcher: Launcher;
  rank: number;
  worldSize: number;
  /** This process's index among those on its node, and how many there are (when the launcher says). */
  localRank?: number;
  localWorldSize?: number;
  /** The node's index and the node count (when the launcher says). */
  nodeRank?: number;
  nodes?: number;
  /** Where rank 0 listens, when the launcher says (torchrun, Kubeflow; Slurm: the first host of the node list). */
  masterAddr?: string;
  masterPort?: number;
}

type Env = NodeJS.ProcessEnv;

/** An integer variable, or undefined when unset; a set but malformed one is an error naming it. */
function int(env: Env, name: string, launcher: Launcher): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw errors.invalidArgument(name, `is "${v}", not a non-negative integer (set by ${launcher})`, 'fix the launcher configuration, or unset the variable');
  return n;
}

/** Slurm's compressed host lists: `n1`, `n[1-3]`, `gpu[01,03-04],cpu1` → the first host. */
export function firstSlurmHost(list: string): string | undefined {
  const m = /^([^,[]+)(\[([^\]]+)\])?/.exec(list.trim());
  if (!m) return undefined;
  if (!m[3]) return m[1];
  const first = m[3].split(',')[0].split('-')[0];
  return `${m[1]}${first}`;
}

const readers: Record<Launcher, (env: Env) => LaunchEnvironment | undefined> = {
  slfer: (env) => {
    const rank = int(env, 'SLFER_RANK', 'slfer');
    const worldSize = int(env, 'SLFER_WORLD_SIZE', 'slfer');
    if (rank === undefined || worldSize === undefined) return undefined;
    return { launcher: 'slfer', rank, worldSize, localRank: int(env, 'SLFER_LOCAL_RANK', 'slfer'), nodeRank: int(env, 'SLFER_NODE_RANK', 'slfer'), masterAddr: env.SLFER_MASTER_ADDR, masterPort: int(env, 'SLFER_MASTER_PORT', 'slfer') };
  },
  torchrun: (env) => {
    if (!env.TORCHELASTIC_RUN_ID) return undefined;
    const rank = int(env, 'RANK', 'torchrun');
    const worldSize = int(env, 'WORLD_SIZE', 'torchrun');
    if (rank === undefined || worldSize === undefined) return undefined;
    return {
      launcher: 'torchrun',
      rank,
      worldSize,
      localRank: int(env, 'LOCAL_RANK', 'torchrun'),
      localWorldSize: int(env, 'LOCAL_WORLD_SIZE', 'torchrun'),
      nodeRank: int(env, 'GROUP_RANK', 'torchrun'),
      nodes: int(env, 'GROUP_WORLD_SIZE', 'torchrun'),
      masterAddr: env.MASTER_ADDR,
      masterPort: int(env, 'MASTER_PORT', 'torchrun'),
    };
  },
  openmpi: (env) => {
    const rank = int(env, 'OMPI_COMM_WORLD_RANK', 'openmpi');
    const worldSize = int(env, 'OMPI_COMM_WORLD_SIZE', 'openmpi');
    if (rank === undefined || worldSize === undefined) return undefined;
    // OMPI_COMM_WORLD_NODE_RANK is the rank within the node, not the node's index: not used.
    return { launcher: 'openmpi', rank, worldSize, localRank: int(env, 'OMPI_COMM_WORLD_LOCAL_RANK', 'openmpi'), localWorldSize: int(env, 'OMPI_COMM_WORLD_LOCAL_SIZE', 'openmpi') };
  },
  mpich: (env) => {
    const rank = int(env, 'PMI_RANK', 'mpich');
    const worldSize = int(env, 'PMI_SIZE', 'mpich');
    if (rank === undefined || worldSize === undefined) return undefined;
    return { launcher: 'mpich', rank, worldSize, localRank: int(env, 'MPI_LOCALRANKID', 'mpich'), localWorldSize: int(env, 'MPI_LOCALNRANKS', 'mpich') };
  },
  slurm: (env) => {
    // The batch script itself also has SLURM_PROCID (0): only a job step (srun) is a launch.
    if (env.SLURM_STEP_ID === undefined || env.SLURM_STEP_ID === 'batch') return undefined;
    const rank = int(env, 'SLURM_PROCID', 'slurm');
    const worldSize = int(env, 'SLURM_NTASKS', 'slurm');
    if (rank === undefined || worldSize === undefined) return undefined;
    const hosts = env.SLURM_STEP_NODELIST ?? env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
    return {
      launcher: 'slurm',
      rank,
      worldSize,
      localRank: int(env, 'SLURM_LOCALID', 'slurm'),
      nodeRank: int(env, 'SLURM_NODEID', 'slurm'),
      nodes: int(env, 'SLURM_NNODES', 'slurm'),
      masterAddr: hosts ? firstSlurmHost(hosts) : undefined,
    };
  },
  'kubeflow-trainer': (env) => {
    const nodeRank = int(env, 'PET_NODE_RANK', 'kubeflow-trainer');
    const nodes = int(env, 'PET_NNODES', 'kubeflow-trainer');
    if (nodeRank === undefined || nodes === undefined) return undefined;
    // One process per pod (without torchrun in between): the node is the rank.
    return { launcher: 'kubeflow-trainer', rank: nodeRank, worldSize: nodes, localRank: 0, nodeRank, nodes, masterAddr: env.PET_MASTER_ADDR, masterPort: int(env, 'PET_MASTER_PORT', 'kubeflow-trainer') };
  },
  kubeflow: (env) => {
    if (!env.MASTER_ADDR) return undefined;
    const rank = int(env, 'RANK', 'kubeflow');
    const worldSize = int(env, 'WORLD_SIZE', 'kubeflow');
    if (rank === undefined || worldSize === undefined) return undefined;
    return { launcher: 'kubeflow', rank, worldSize, localRank: 0, nodeRank: rank, nodes: worldSize, masterAddr: env.MASTER_ADDR, masterPort: int(env, 'MASTER_PORT', 'kubeflow') };
  },
  'indexed-job': (env) => {
    const rank = int(env, 'JOB_COMPLETION_INDEX', 'indexed-job');
    if (rank === undefined) return undefined;
    const worldSize = int(env, 'SLFER_WORLD_SIZE', 'indexed-job') ?? int(env, 'PET_NNODES', 'indexed-job');
    if (worldSize === undefined) {
      throw errors.invalidArgument('JOB_COMPLETION_INDEX', 'is set (a Kubernetes Indexed Job), but nothing says how many pods the job has', 'set SLFER_WORLD_SIZE to the Job\'s completions in the pod template');
    }
    return { launcher: 'indexed-job', rank, worldSize, localRank: 0, nodeRank: rank, nodes: worldSize, masterAddr: env.SLFER_MASTER_ADDR, masterPort: int(env, 'SLFER_MASTER_PORT', 'indexed-job') };
  },
};

/** The launcher that started this process, or undefined when none did (then `launch` forks its own workers). */
export function detectLauncher(env: Env = process.env): LaunchEnvironment | undefined {
  const found = LAUNCHERS.map((l) => readers[l](env)).filter((x): x is LaunchEnvironment => x !== undefined);
  if (found.length === 0) return undefined;
  const [chosen] = found;
  for (const other of found.slice(1)) {
    if (other.worldSize === chosen.worldSize && other.rank !== chosen.rank) {
      throw errors.invalidArgument(
        'launcher environment',
        `${chosen.launcher} says this process is rank ${chosen.rank} of ${chosen.worldSize}, ${other.launcher} says rank ${other.rank} of ${other.worldSize}`,
        `start slfer-dist under one launcher, or unset the other's variables (${chosen.launcher} wins by precedence only when the two describe different worlds)`,
      );
    }
  }
  if (chosen.rank >= chosen.worldSize) throw errors.invalidArgument('launcher environment', `${chosen.launcher} says rank ${chosen.rank} of ${chosen.worldSize}`, 'a rank must be below the world size: check the launcher configuration');
  return chosen;
}
