/**
 * Where this `slfer-dist launch` process sits in the run, decided once, before anything starts:
 *   local  one machine, this process forks every worker (`--workers N`, `--gpus N`);
 *   agent  one agent per node, torchrun's way (`--nnodes N --node-rank R --nproc-per-node K
 *          --rdzv-endpoint HOST:PORT`): each forks its K workers, node 0's also hosts the coordinator;
 *   rank   an external launcher (srun, mpirun, torchrun, Kubernetes) started this process as one
 *          rank of many: it runs that rank itself, no forking, and rank 0 also hosts the coordinator.
 */
import { errors } from '../src/errors.js';
import { isLoopback } from './advertise.js';
import { detectLauncher, type Launcher, type LaunchEnvironment } from './launcher-env.js';

/** torch.distributed's default port, for launchers that give no port (srun, mpirun). */
export const DEFAULT_RDZV_PORT = 29500;

interface Common {
  worldSize: number;
  /** Ranks this process runs or forks (global ranks). */
  localRanks: number[];
  /** Whether the world spans machines (then sockets bind beyond loopback and use tcp between nodes). */
  multiMachine: boolean;
  /** Rank 0's host and the coordinator's port. */
  host: string;
  port: number | undefined;
  /** Whether this process hosts the coordinator. */
  coordinator: boolean;
}

export type Placement =
  | (Common & { mode: 'local' })
  | (Common & { mode: 'agent'; nodes: number; nodeRank: number; perNode: number })
  | (Common & { mode: 'rank'; launcher: Launcher; rank: number; localRank: number | undefined; env: LaunchEnvironment });

export interface PlacementFlags {
  workers?: number;
  gpus?: number;
  nnodes?: number;
  nodeRank?: number;
  nprocPerNode?: number;
  rdzvEndpoint?: string;
  port?: number;
}

/** HOST:PORT (or [v6]:PORT) as given to --rdzv-endpoint. */
export function parseEndpoint(text: string, what = '--rdzv-endpoint'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw errors.invalidArgument(what, `"${text}" is not HOST:PORT`, 'give rank 0\'s host and a free port, e.g. node1:29500');
  return { host: m[1] ?? m[2], port };
}

const positive = (n: number | undefined, flag: string, min = 1) => {
  if (n !== undefined && (!Number.isInteger(n) || n < min)) throw errors.invalidArgument(flag, `${n}`, `pass a whole number >= ${min}`);
  return n;
};

export function resolvePlacement(flags: PlacementFlags, env: NodeJS.ProcessEnv = process.env): Placement {
  const launcher = detectLauncher(env);
  if (flags.nnodes !== undefined) {
    if (launcher) {
      throw errors.invalidArgument('--nnodes', `was given, but ${launcher.launcher} already started this process as rank ${launcher.rank} of ${launcher.worldSize}`, 'under a launcher, run `slfer-dist launch` without --nnodes (one process per rank); without one, unset its variables');
    }
    const nodes = positive(flags.nnodes, '--nnodes')!;
    const nodeRank = flags.nodeRank;
    if (nodeRank === undefined || !Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nodes) throw errors.invalidArgument('--node-rank', `${nodeRank ?? 'is missing'}`, `give this node's index, 0..${nodes - 1} (node 0 hosts the coordinator)`);
    if (!flags.rdzvEndpoint) throw errors.invalidArgument('--rdzv-endpoint', 'is missing', 'give node 0\'s HOST:PORT, the same on every node');
    const { host, port } = parseEndpoint(flags.rdzvEndpoint);
    const perNode = positive(flags.nprocPerNode ?? flags.gpus ?? flags.workers ?? 1, '--nproc-per-node')!;
    if (flags.gpus !== undefined && flags.gpus !== perNode) throw errors.invalidArgument('--gpus', `${flags.gpus} with --nproc-per-node ${perNode}`, 'give one of them (one worker per GPU)');
    // Node 0 at a loopback address: every "node" is on this machine (a dev setup), so nothing
    // needs to listen beyond loopback.
    const multiMachine = nodes > 1 && !isLoopback(host);
    return {
      mode: 'agent',
      nodes,
      nodeRank,
      perNode,
      worldSize: nodes * perNode,
      localRanks: Array.from({ length: perNode }, (_, i) => nodeRank * perNode + i),
      multiMachine,
      host,
      port,
      coordinator: nodeRank === 0,
    };
  }
  if (launcher) {
    if (flags.workers !== undefined) throw errors.invalidArgument('--workers', `was given, but ${launcher.launcher} already started this process as rank ${launcher.rank} of ${launcher.worldSize}`, 'under a launcher each process is one rank: drop --workers and set the process count in the launcher');
    const given = flags.rdzvEndpoint ? parseEndpoint(flags.rdzvEndpoint) : undefined;
    const nodes = launcher.nodes ?? (launcher.localWorldSize !== undefined ? Math.ceil(launcher.worldSize / launcher.localWorldSize) : undefined);
    const host = given?.host ?? launcher.masterAddr ?? (nodes === 1 ? '127.0.0.1' : undefined);
    if (host === undefined) {
      throw errors.invalidArgument(
        'coordinator address',
        `${launcher.launcher} does not say where rank 0 runs`,
        "pass --rdzv-endpoint HOST:PORT with rank 0's host (the first host of the job), or set SLFER_MASTER_ADDR and SLFER_MASTER_PORT",
      );
    }
    let port = given?.port ?? launcher.masterPort ?? positive(Number(env.SLFER_MASTER_PORT ?? NaN) || undefined, 'SLFER_MASTER_PORT') ?? flags.port ?? DEFAULT_RDZV_PORT;
    // torchrun's agent on node 0 holds its own store on MASTER_PORT (and tells its workers to use
    // it: TORCHELASTIC_USE_AGENT_STORE), so the coordinator takes the port after it.
    if (!given && launcher.launcher === 'torchrun' && env.TORCHELASTIC_USE_AGENT_STORE === 'True') port += 1;
    // Rank 0 at a loopback address: every rank is on this machine, whatever the launcher's node count.
    const multiMachine = !isLoopback(host) && (nodes === undefined || nodes > 1);
    return {
      mode: 'rank',
      launcher: launcher.launcher,
      rank: launcher.rank,
      localRank: launcher.localRank,
      env: launcher,
      worldSize: launcher.worldSize,
      localRanks: [launcher.rank],
      multiMachine,
      host,
      port,
      coordinator: launcher.rank === 0,
    };
  }
  for (const [flag, v] of [['--node-rank', flags.nodeRank], ['--nproc-per-node', flags.nprocPerNode], ['--rdzv-endpoint', flags.rdzvEndpoint]] as const) {
    if (v !== undefined) throw errors.invalidArgument(flag, 'was given without --nnodes', 'give --nnodes N too (one agent per node), or drop it for a run on this machine');
  }
  const worldSize = positive(flags.gpus ?? flags.workers ?? 2, flags.gpus !== undefined ? '--gpus' : '--workers')!;
  return { mode: 'local', worldSize, localRanks: Array.from({ length: worldSize }, (_, i) => i), multiMachine: false, host: '127.0.0.1', port: flags.port, coordinator: true };
}

/**
 * The run's id and this attempt's number, the same in every process of one attempt: a process of
 * another run, or one left over from an earlier attempt, is refused at the rendezvous. Launchers
 * that restart (torchrun, an srun retry loop: one job step per try) say which attempt this is.
 */
export function runIdentity(placement: Placement, env: NodeJS.ProcessEnv, given?: string): { runId: string; attempt: number } {
  const num = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);
  if (placement.mode === 'rank') {
    const runId = given ?? env.SLFER_RUN_ID ?? env.TORCHELASTIC_RUN_ID ?? env.SLURM_JOB_ID ?? env.OMPI_MCA_ess_base_jobid ?? env.PMI_ID ?? `${placement.launcher}@${placement.host}:${placement.port}`;
    const attempt = num(env.SLFER_ATTEMPT) ?? num(env.TORCHELASTIC_RESTART_COUNT) ?? num(env.SLURM_STEP_ID) ?? 0;
    return { runId, attempt };
  }
  if (placement.mode === 'agent') return { runId: given ?? env.SLFER_RUN_ID ?? `agents@${placement.host}:${placement.port}`, attempt: 0 };
  return { runId: given ?? 'local', attempt: 0 };
}
