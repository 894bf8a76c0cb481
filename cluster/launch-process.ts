import { chooseSecurity } from './security/curve.js';
import { advertiseAddress } from './advertise.js';
import { gpuEnv, gpuOfLocalRank, queryGpus } from './gpus.js';
import { launch, workerSpecOf, type LaunchOptions, type LaunchResult } from './coordinator.js';
import { runNodeAgent } from './node-agent.js';
import { resolvePlacement, runIdentity, type PlacementFlags } from './placement.js';
import { runWorker } from './rank-worker.js';

export type LaunchOutcome = { role: 'coordinator'; result: LaunchResult } | { role: 'agent'; node: number } | { role: 'rank'; rank: number };

/**
 * What `slfer-dist launch` does in this process, wherever it was started: on one machine, as a
 * node's agent, or as one rank under srun/mpirun/torchrun/Kubernetes (placement.ts decides). The
 * process that hosts the coordinator runs the whole run lifecycle (launch()); the others only
 * serve ranks, and never touch the run folder.
 */
export async function launchThisProcess(flags: PlacementFlags & { runId?: string; authKey?: string; insecure?: boolean }, options: LaunchOptions, env: NodeJS.ProcessEnv = process.env): Promise<LaunchOutcome> {
  const placement = resolvePlacement(flags, env);
  // One process per rank, started by a launcher: --gpus pins it to its local rank's GPU, before any
  // engine loads (they read the pinning from the environment once).
  if (placement.mode === 'rank' && options.gpus !== undefined) {
    const have = queryGpus();
    const gpu = gpuOfLocalRank(have.gpus, placement.localRank ?? 0, env.CUDA_VISIBLE_DEVICES, have.how);
    Object.assign(env, gpuEnv(gpu));
    (options.events?.log ?? (() => {}))(`rank ${placement.rank} (local rank ${placement.localRank ?? 0}): GPU ${gpu.index} ${gpu.uuid} (${gpu.name})`);
  }
  // Sockets that listen beyond loopback take connections from anyone on the network: a run across
  // machines has a key (every socket then uses CURVE), or says out loud that it has none.
  const security = chooseSecurity({ multiMachine: placement.multiMachine }, flags);
  if (security.kind === 'none' && security.insecure) (options.events?.log ?? (() => {}))(security.note);
  const authKey = security.kind === 'curve' ? security.keyFile : undefined;
  options = { ...options, authKey };
  const { runId, attempt } = runIdentity(placement, env, flags.runId);
  const log = options.events?.log ?? (() => {});
  if (placement.coordinator) return { role: 'coordinator', result: await launch({ ...options, placement, runId, firstAttempt: attempt }) };
  if (placement.mode === 'agent') {
    await runNodeAgent(placement, { runId, maxRestarts: options.maxRestarts ?? 0, gpus: options.gpus, bucketMb: options.bucketMb, compression: options.compression, authKey, log, signal: options.signal });
    return { role: 'agent', node: placement.nodeRank };
  }
  if (placement.mode !== 'rank') throw new Error('unreachable: a local placement always hosts the coordinator');
  const advertise = placement.multiMachine ? await advertiseAddress(placement.host, env) : undefined;
  log(`rank ${placement.rank} of ${placement.worldSize} (${placement.launcher}, attempt ${attempt}): joining the coordinator at ${placement.host}:${placement.port}${advertise ? `, advertising ${advertise}` : ''}`);
  await runWorker(
    workerSpecOf(placement.rank, {
      placement,
      coordinator: `tcp://${placement.host}:${placement.port}`,
      advertise,
      runId,
      attempt,
      transport: options.transport,
      bucketMb: options.bucketMb,
      compression: options.compression,
      authKey,
    }),
    { signal: options.signal },
  );
  return { role: 'rank', rank: placement.rank };
}
