/**
 * A group of worker processes on this machine, one per rank: spawned together, watched together
 * (exit), stopped together, so that no process outlives the group. `launch`, a node's agent and the
 * benchmarks run their ranks through it. What an exit means for the run is not decided here: the
 * group reports it (onExit) and the caller's failure policy decides. Silence is not watched here:
 * ranks may run on other machines, so the coordinator watches every rank's heartbeat (liveness.ts).
 *
 * Lifecycle (PyTorch elastic's WorkerState, reduced to what one group goes through):
 *
 *   INIT ──start()──▶ STARTING ──healthy()──▶ HEALTHY
 *                         │                      │
 *                         └──────stop()──────────┴──▶ STOPPING ──▶ SUCCEEDED (every worker exited 0)
 *                                                                ╰─▶ FAILED    (any other exit)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { errors } from '../src/errors.js';

export type GroupState = 'INIT' | 'STARTING' | 'HEALTHY' | 'STOPPING' | 'SUCCEEDED' | 'FAILED';

const NEXT: Readonly<Record<GroupState, readonly GroupState[]>> = {
  INIT: ['STARTING'],
  STARTING: ['HEALTHY', 'STOPPING'],
  HEALTHY: ['STOPPING'],
  STOPPING: ['SUCCEEDED', 'FAILED'],
  SUCCEEDED: [],
  FAILED: [],
};

export interface WorkerSpec {
  /** The compiled entry point to fork. */
  entry: string;
  args?: string[];
  env: NodeJS.ProcessEnv;
  execArgv?: string[];
}

export interface GroupOptions {
  /**
   * 'tail': stdout and stderr are kept (the last 20 lines per rank, for the error that names a dead
   * worker) and passed to onLine; 'inherit': they go to this process's own.
   */
  output: 'tail' | 'inherit';
  onLine?(rank: number, line: string): void;
  /** A worker exited while the group was not stopping (whatever its code). */
  onExit?(rank: number, how: string, lastWords: string[]): void;
  /** A worker could not be started at all. */
  onSpawnError?(rank: number, error: Error): void;
  /** A message on the fork IPC channel. */
  onMessage?(rank: number, message: unknown): void;
}

interface Member {
  rank: number;
  child: ChildProcess;
  tail: string[];
  exited: Promise<void>;
  code: number | null;
  signal: NodeJS.Signals | null;
  done: boolean;
}

const TAIL_LINES = 20;

export class WorkerGroup {
  private current: GroupState = 'INIT';
  private readonly members: Member[] = [];

  constructor(
    private readonly specs: WorkerSpec[],
    private readonly options: GroupOptions,
  ) {}

  get state(): GroupState {
    return this.current;
  }

  get pids(): number[] {
    return this.members.map((m) => m.child.pid!).filter((p) => p !== undefined);
  }

  /** The last lines a rank wrote (output 'tail'). */
  lastWords(rank: number): string[] {
    return this.members[rank]?.tail.slice(-10) ?? [];
  }

  private move(to: GroupState): void {
    if (!NEXT[this.current].includes(to)) throw errors.internal(`worker group: ${this.current} cannot become ${to}`);
    this.current = to;
  }

  start(): void {
    this.move('STARTING');
    this.specs.forEach((spec, rank) => this.members.push(this.spawn(rank, spec)));
  }

  /** Every worker reported ready. */
  healthy(): void {
    this.move('HEALTHY');
  }

  /**
   * Ends the group: waits up to `graceMs` for the workers to exit by themselves (after a stop
   * command), then SIGTERM, then SIGKILL for whatever is still there 3 s later. Resolves with the
   * final state once every process is gone.
   */
  async stop(graceMs = 0): Promise<GroupState> {
    if (this.current === 'SUCCEEDED' || this.current === 'FAILED') return this.current;
    if (this.current !== 'STOPPING') this.move('STOPPING');
    await this.waitAll(graceMs);
    for (const m of this.members) if (!m.done) m.child.kill('SIGTERM');
    await this.waitAll(3000);
    for (const m of this.members) if (!m.done) m.child.kill('SIGKILL');
    await Promise.all(this.members.map((m) => m.exited));
    this.move(this.members.every((m) => m.code === 0) ? 'SUCCEEDED' : 'FAILED');
    return this.current;
  }

  private async waitAll(ms: number): Promise<void> {
    if (ms <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.members.map((m) => m.exited)), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  private spawn(rank: number, spec: WorkerSpec): Member {
    const tail = this.options.output === 'tail';
    const child = fork(spec.entry, spec.args ?? [], { env: spec.env, execArgv: spec.execArgv ?? [], stdio: tail ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'inherit', 'inherit', 'ipc'] });
    let exitedResolve!: () => void;
    const m: Member = { rank, child, tail: [], exited: new Promise((r) => (exitedResolve = r)), code: null, signal: null, done: false };
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n').filter((l) => l.trim())) {
        m.tail.push(line);
        if (m.tail.length > TAIL_LINES) m.tail.shift();
        this.options.onLine?.(rank, line);
      }
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('message', (msg) => this.options.onMessage?.(rank, msg));
    child.on('error', (e) => {
      // Never started: there will be no exit event.
      if (child.pid === undefined) {
        m.done = true;
        exitedResolve();
      }
      this.options.onSpawnError?.(rank, e);
    });
    child.on('exit', (code, signal) => {
      m.code = code;
      m.signal = signal;
      m.done = true;
      exitedResolve();
      if (this.current === 'STARTING' || this.current === 'HEALTHY') this.options.onExit?.(rank, signal ? `was killed by ${signal}` : `exited with code ${code}`, m.tail.slice(-10));
    });
    return m;
  }
}
