/**
 * Ctrl-C (SIGINT) or a launcher's SIGTERM (srun -K1, scancel, a deleted pod, mpirun aborting the
 * job) for a long command: the first asks it to stop at the next safe point (its AbortSignal, with
 * `message` saying what that means), so the run's records are written; a second quits now.
 * `terminated()` says whether it was SIGTERM: the exit code is then 143 (128 + 15), which tells a
 * retry loop that the process was stopped, not that its config was wrong (1).
 */
export function stopOnCtrlC(message: string): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const on = (sig: NodeJS.Signals) => () => {
    if (sig === 'SIGTERM') terminatedBySigterm = true;
    if (controller.signal.aborted) process.exit(sig === 'SIGTERM' ? EXIT_TERMINATED : 130);
    process.stderr.write(`\n${sig === 'SIGTERM' ? 'SIGTERM: ' : ''}${message}\n`);
    // The reason names the signal: a SIGTERM's stop is recorded as coming from the launcher.
    controller.abort(sig);
  };
  const onSigint = on('SIGINT');
  const onSigterm = on('SIGTERM');
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  return {
    signal: controller.signal,
    release: () => {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
    },
  };
}

export const EXIT_TERMINATED = 143;
let terminatedBySigterm = false;

/** Whether a SIGTERM stopped this process's command. */
export const terminated = (): boolean => terminatedBySigterm;
