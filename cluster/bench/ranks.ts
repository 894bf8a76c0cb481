import { errors, fromWire, toWire, type WireError } from '../../src/errors.js';
import { RING_EXEC_ARGV, ringProcessEnv } from '../collective/process-setup.js';
import { RendezvousServer } from '../collective/rendezvous.js';
import { WorkerGroup } from '../worker-group.js';

/** What a benchmark rank sends its parent over the fork IPC channel. */
export type RankMessage<R> = { type: 'result'; rank: number; result: R } | { type: 'error'; rank: number; error: WireError };

/**
 * Runs one benchmark process per rank: a rendezvous server for their ring, `entry` forked with
 * `configOf(rank, coordinator)` as argv[2] (JSON), and each rank's result back over IPC. Rejects
 * on the first failure or after deadlineMs; every child is gone when it settles.
 */
export async function runRanks<C, R>(entry: string, worldSize: number, configOf: (rank: number, coordinator: string) => C, deadlineMs: number): Promise<{ results: R[]; pids: number[] }> {
  const server = new RendezvousServer({ worldSize, timeoutMs: Math.min(deadlineMs, 120_000) });
  const coordinator = await server.bind();
  const results = new Map<number, R>();
  let timer: NodeJS.Timeout | undefined;
  let group: WorkerGroup | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(errors.clusterBenchFailed(`not finished after ${Math.round(deadlineMs / 1000)} s`)), deadlineMs);
      server.waitForRanks().catch(reject);
      const specs = Array.from({ length: worldSize }, (_, rank) => ({ entry, args: [JSON.stringify(configOf(rank, coordinator))], env: ringProcessEnv(), execArgv: [...RING_EXEC_ARGV] }));
      group = new WorkerGroup(specs, {
        output: 'inherit',
        onSpawnError: (rank, e) => reject(errors.clusterBenchFailed(`rank ${rank} could not run`, e)),
        onMessage: (rank, raw) => {
          const m = raw as RankMessage<R>;
          if (m.type === 'error') {
            const e = fromWire(m.error, `rank ${rank}`);
            reject(e.code === 'SLFER_INTERNAL' ? errors.clusterBenchFailed(`rank ${rank}: ${m.error.message}`) : e);
          } else {
            results.set(m.rank, m.result);
            if (results.size === worldSize) resolve();
          }
        },
        // A rank exits by itself once it has reported; before that, an exit is a failure.
        onExit: (rank, how) => {
          if (!results.has(rank)) reject(errors.clusterBenchFailed(`rank ${rank} (pid ${group?.pids[rank]}) ${how} before reporting`));
        },
      });
      group.start();
    });
  } finally {
    clearTimeout(timer);
    // Ranks that reported leave by themselves; whatever is still there after 5 s is stopped.
    await group?.stop(5000);
    server.close();
  }
  return { results: Array.from({ length: worldSize }, (_, r) => results.get(r)!), pids: group!.pids };
}

/** The rank side: run `main`, report its result or its error to the parent, exit. */
export function rankMain<C, R>(main: (cfg: C) => Promise<R>): void {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as C & { rank: number };
  const send = (m: RankMessage<R>) => new Promise<void>((resolve) => process.send!(m, () => resolve()));
  // If the parent goes away (killed, crashed), so do we: no orphaned ranks holding ports.
  process.on('disconnect', () => process.exit(1));
  main(cfg).then(
    async (result) => {
      await send({ type: 'result', rank: cfg.rank, result });
      process.removeAllListeners('disconnect');
      process.disconnect();
    },
    async (e: unknown) => {
      if (process.connected) await send({ type: 'error', rank: cfg.rank, error: toWire(e) });
      process.exit(1);
    },
  );
}
