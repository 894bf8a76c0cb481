/**
 * How to start a process that runs a Ring: pass these to child_process.fork() (or node's command
 * line) for the worker processes.
 *
 *   fork(entry, args, { execArgv: [...RING_EXEC_ARGV], env: ringProcessEnv() })
 *
 * Why: every payload a rank receives lands in a fresh buffer that libzmq mallocs (ZeroMQ cannot
 * receive into a given buffer). With glibc's defaults those MB-sized blocks are returned to the
 * kernel when freed and faulted back in on the next receive; on this VM a page fault costs ~15 µs,
 * so a 55 MB all-reduce spent more time faulting than copying (2-3x slower). Keeping freed memory
 * in the allocator (the tunables below) and freeing it promptly (a minor GC every few MB, which
 * needs --expose-gc; see Ring's gcEveryBytes) lets the same warm memory serve every message.
 * Without them a Ring still works, only slower. glibc reads GLIBC_TUNABLES at process start only,
 * so this cannot be applied from inside a running process; other C libraries ignore it.
 */

/** Node flags for a Ring process: expose gc() so the Ring can free received buffers promptly. */
export const RING_EXEC_ARGV: readonly string[] = ['--expose-gc'];

/**
 * glibc malloc settings: serve blocks up to 32 MiB from the heap instead of fresh mmaps, and never
 * give freed heap memory back to the kernel (RSS stays at its peak, which a trainer reaches anyway).
 */
export const RING_MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1099511627776';

/** The environment for a Ring process: `env` plus the malloc tunables (kept if already set). */
export function ringProcessEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const current = env.GLIBC_TUNABLES;
  if (current?.includes('glibc.malloc.trim_threshold') || current?.includes('glibc.malloc.mmap_threshold')) return { ...env };
  return { ...env, GLIBC_TUNABLES: current ? `${current}:${RING_MALLOC_TUNABLES}` : RING_MALLOC_TUNABLES };
}

/** Whether this process was started as above (for a warning or a benchmark report). */
export function ringProcessTuned(): { gc: boolean; malloc: boolean } {
  return {
    gc: typeof (globalThis as { gc?: unknown }).gc === 'function',
    malloc: (process.env.GLIBC_TUNABLES ?? '').includes('glibc.malloc.trim_threshold'),
  };
}
