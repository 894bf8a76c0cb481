import { isSlferError } from '../src/errors.js';
import { EXIT_RETRYABLE, isRetryable } from './failure-policy.js';
import { runWorker } from './rank-worker.js';
import { readWorkerSpec, type WorkerSpec } from './worker-spec.js';

/**
 * The entry point of a worker process forked by `slfer-dist launch` (or by a node's agent): reads
 * its spec from the environment, runs its rank (rank-worker.ts), and exits with a code that says
 * whether a retry may help (75) or not (1).
 */
const spec = ((): WorkerSpec => {
  try {
    return readWorkerSpec();
  } catch (e) {
    // Before any socket exists: say what is wrong and leave (the coordinator reports the exit).
    process.stderr.write(`${isSlferError(e) ? e.format() : String(e)}\n`);
    process.exit(1);
  }
})();

// The process that forked us is our supervisor: if it dies, nobody would ever stop us.
process.on('disconnect', () => process.exit(1));

runWorker(spec).then(
  () => process.exit(0),
  (e: unknown) => process.exit(isSlferError(e) && isRetryable(e.code) ? EXIT_RETRYABLE : 1),
);
