import { availableParallelism } from 'node:os';
import { errors } from '../src/errors.js';
import { compiledSibling } from '../src/util/compiled-path.js';
import { advertiseAddress } from './advertise.js';
import { RING_EXEC_ARGV, ringProcessEnv } from './collective/process-setup.js';
import { workerSpecOf } from './coordinator.js';
import { EXIT_RETRYABLE } from './failure-policy.js';
import { assignGpus, gpuEnv, queryGpus, type Gpu } from './gpus.js';
import type { Placement } from './placement.js';
import { WorkerGroup } from './worker-group.js';
import { workerSpecEnv } from './worker-spec.js';

export interface NodeAgentOptions {
  runId: string;
  maxRestarts: number;
  gpus?: number;
  bucketMb?: number;
  compression?: 'none' | 'fp16';
  /** The run key file (CURVE on every socket), as given to this node's agent. */
  authKey?: string;
  log: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * The agent of a node other than node 0 (`launch --nnodes N --node-rank R`, R > 0), torchrun's way:
 * it forks this node's workers, which join node 0's coordinator, and waits for them. When they fail
 * in a way a retry can help (a lost peer or coordinator: node 0 restarts the whole group), it starts
 * them again as the next attempt, up to --max-restarts times, like node 0 does.
 */
export async function runNodeAgent(placement: Extract<Placement, { mode: 'agent' }>, o: NodeAgentOptions): Promise<void> {
  const advertise = placement.multiMachine ? await advertiseAddress(placement.host) : undefined;
  const coordinator = `tcp://${placement.host}:${placement.port}`;
  let assigned: Gpu[] | undefined;
  if (o.gpus !== undefined) {
    const have = queryGpus();
    assigned = assignGpus(have.gpus, placement.perNode, process.env.CUDA_VISIBLE_DEVICES, have.how);
  }
  for (let attempt = 0; ; attempt++) {
    const specs = placement.localRanks.map((rank, i) => {
      const spec = workerSpecOf(rank, { placement, coordinator, advertise, runId: o.runId, attempt, bucketMb: o.bucketMb, compression: o.compression, authKey: o.authKey });
      const env: NodeJS.ProcessEnv = { ...ringProcessEnv(), ...workerSpecEnv(spec) };
      if (assigned) Object.assign(env, gpuEnv(assigned[i]));
      else if (process.env.OMP_NUM_THREADS === undefined) env.OMP_NUM_THREADS = String(Math.max(1, Math.floor(availableParallelism() / placement.perNode)));
      return { entry: compiledSibling(import.meta.url, 'worker.js'), env, execArgv: [...RING_EXEC_ARGV] };
    });
    let first: { rank: number; how: string; lastWords: string[] } | undefined;
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    let exited = 0;
    const group = new WorkerGroup(specs, {
      output: 'tail',
      onLine: (_i, line) => process.stderr.write(`${line}\n`),
      onExit: (i, how, lastWords) => {
        exited++;
        if (how !== 'exited with code 0') first ??= { rank: placement.localRanks[i], how, lastWords };
        if (first || exited === specs.length) settle();
      },
      onSpawnError: (i, error) => {
        first ??= { rank: placement.localRanks[i], how: `could not be started (${error.message})`, lastWords: [] };
        settle();
      },
    });
    const onAbort = () => {
      first ??= { rank: placement.localRanks[0], how: 'was stopped (interrupted)', lastWords: [] };
      settle();
    };
    o.signal?.addEventListener('abort', onAbort);
    group.start();
    o.log(`node ${placement.nodeRank}: started ranks ${placement.localRanks.join(', ')} (attempt ${attempt}), coordinator ${coordinator}${advertise ? `, advertising ${advertise}` : ''}`);
    await done;
    o.signal?.removeEventListener('abort', onAbort);
    await group.stop(first ? 0 : 10_000);
    if (!first) return;
    // A retry helps only when the workers lost a peer or the coordinator (exit 75) or were killed.
    const retryable = first.how === `exited with code ${EXIT_RETRYABLE}` || first.how.startsWith('was killed');
    if (!retryable || attempt >= o.maxRestarts || o.signal?.aborted) throw errors.clusterWorkerFailed(first.rank, first.how, first.lastWords);
    o.log(`node ${placement.nodeRank}: rank ${first.rank} ${first.how}; starting this node's workers again (restart ${attempt + 1} of ${o.maxRestarts})`);
  }
}
