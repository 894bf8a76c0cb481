/**
 * What a failure in a worker group means for the run, decided apart from the loop that meets it
 * (Ray Train's FailurePolicy): every kind of failure becomes a typed error, and the policy says
 * whether a new attempt may help. An error in the config or the data repeats on every attempt, and
 * so does a user's Ctrl-C: those always stop.
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
  | { kind: 'aborted' };

export type Decision = { action: 'stop'; error: SlferError } | { action: 'restart'; error: SlferError };

/** Codes that say the input is wrong: a restart would fail the same way. */
const NOT_RETRYABLE: ReadonlySet<SlferErrorCode> = new Set<SlferErrorCode>([
  'SLFER_CONFIG_INVALID',
  'SLFER_CONFIG_NOT_FOUND',
  'SLFER_DATASET_NOT_FOUND',
  'SLFER_LABEL_INVALID',
  'SLFER_MASK_MISSING',
  'SLFER_MASK_INVALID',
  'SLFER_CHECKPOINT_NOT_FOUND',
  'SLFER_CHECKPOINT_MISMATCH',
  'SLFER_TORCH_FILE_INVALID',
  'SLFER_TORCH_FILE_UNSAFE',
  'SLFER_WEIGHTS_MISMATCH',
  'SLFER_INVALID_ARGUMENT',
  'SLFER_ABORTED',
  'SLFER_ENGINE_UNAVAILABLE',
  'SLFER_GPU_SELECTION',
  'SLFER_CLUSTER_DEVICES',
]);

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
      return new SlferError(f.error.code, `worker rank ${f.rank}: ${f.error.message}`, f.error.hint);
    case 'protocol':
      return f.error;
    case 'aborted':
      return errors.aborted('the launched run');
  }
}

export class FailurePolicy {
  /** `maxRestarts`: new attempts allowed after failures a restart can help (torchrun's default: 0). */
  constructor(private readonly maxRestarts = 0) {}

  decide(f: GroupFailure, restartsSoFar: number): Decision {
    const error = failureError(f);
    const retryable = !NOT_RETRYABLE.has(error.code);
    return retryable && restartsSoFar < this.maxRestarts ? { action: 'restart', error } : { action: 'stop', error };
  }
}
