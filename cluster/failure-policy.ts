/**
 * What a failure in a worker group means for the run, decided apart from the loop that meets it
 * (Ray Train's FailurePolicy): every kind of failure becomes a typed error, and the policy says
 * whether a new attempt may help: only a lost process or link can be helped by one. An error in the
 * config or the data repeats on every attempt, and a user's Ctrl-C means stop.
 */
import { errors, SlferError, type SlferErrorCode } from '../src/errors.js';

export type GroupFailure =
  | { kind: 'exited'; rank: number; how: string; lastWords: string[] }
  | { kind: 'silent'; rank: number; seconds: number }
  | { kind: 'spawn-error'; rank: number; error: Error }
  /** The worker caught an error and reported it on the control channel. */
  | { kind: 'reported'; rank: number; error: SlferError }
  /** A worker sent what the control protocol does not know. */
  | { kind: 'protocol'; rank: number; error: SlferError }
  /** Ctrl-C, or a launcher's SIGTERM (`signal`). */
  | { kind: 'aborted'; signal?: string };

export type Decision = { action: 'stop'; error: SlferError } | { action: 'restart'; error: SlferError };

/**
 * Codes that say a process or a link was lost: a new attempt may well succeed. Anything else (a
 * config or data error, a refused file, a bug) would fail the same way again, so it never restarts,
 * and the CLI's exit code says so (EXIT_RETRYABLE against 1).
 */
const RETRYABLE: ReadonlySet<SlferErrorCode> = new Set<SlferErrorCode>([
  'SLFER_CLUSTER_WORKER_FAILED',
  'SLFER_CLUSTER_HEARTBEAT_LOST',
  'SLFER_CLUSTER_PEER_TIMEOUT',
  'SLFER_CLUSTER_TRANSPORT',
  'SLFER_CLUSTER_RENDEZVOUS_TIMEOUT',
  'SLFER_CLUSTER_RING_UNUSABLE',
]);

export const isRetryable = (code: SlferErrorCode): boolean => RETRYABLE.has(code);

/** sysexits.h's EX_TEMPFAIL: what an external launcher's retry loop (srun, a JobSet) can act on. */
export const EXIT_RETRYABLE = 75;

/** The typed error a failure is reported as. */
export function failureError(f: GroupFailure): SlferError {
  switch (f.kind) {
    case 'exited':
      return errors.clusterWorkerFailed(f.rank, f.how, f.lastWords);
    case 'silent':
      return errors.clusterHeartbeatLost(f.rank, f.seconds);
    case 'spawn-error':
      return errors.clusterWorkerFailed(f.rank, `could not be started (${f.error.message})`, []);
    case 'reported':
      // Most workers' errors already say whose they are ("rank 1: ..."): no second prefix.
      return new SlferError(f.error.code, f.error.message.startsWith(`rank ${f.rank}:`) ? `worker ${f.error.message}` : `worker rank ${f.rank}: ${f.error.message}`, f.error.hint);
    case 'protocol':
      return f.error;
    case 'aborted':
      // A launcher's SIGTERM usually follows another task's failure (srun -K1), which this process
      // may not have seen yet: say where the stop came from.
      return f.signal === 'SIGTERM'
        ? new SlferError('SLFER_ABORTED', 'the launched run was stopped by SIGTERM (from its launcher: srun -K1 after another task failed, scancel, a deleted pod)', 'the run continues from its newest checkpoint with --resume auto (the sbatch template and Kubernetes restarts do that)')
        : errors.aborted('the launched run');
  }
}

export class FailurePolicy {
  /** `maxRestarts`: new attempts allowed after failures a restart can help (torchrun's default: 0). */
  constructor(private readonly maxRestarts = 0) {}

  decide(f: GroupFailure, restartsSoFar: number): Decision {
    const error = failureError(f);
    return isRetryable(error.code) && restartsSoFar < this.maxRestarts ? { action: 'restart', error } : { action: 'stop', error };
  }
}
