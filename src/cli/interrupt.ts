/**
 * Ctrl-C for a long command: the first asks it to stop at the next safe point (its AbortSignal,
 * with `message` saying what that means); a second quits now (exit 130). Call `release` when done.
 */
export function stopOnCtrlC(message: string): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`\n${message}\n`);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, release: () => process.off('SIGINT', onSigint) };
}
