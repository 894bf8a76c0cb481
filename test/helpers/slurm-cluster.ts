// A real Slurm cluster on the two namespaces of test/helpers/netns.ts: munged, slurmctld and one
// slurmd per node, all as root from one temp folder, with one generated slurm.conf. Nothing is
// installed as a service and nothing under /etc or /var is touched.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRunning, namespacesAvailable, twoNodes, which, type Availability, type ExecOptions, type Node, type RunOptions, type RunResult, type TwoNodes } from './netns.js';

const PACKAGES = 'apt-get install -y --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge';

/** Whether slurmCluster() can run here: the namespaces' requirements plus the Slurm and munge binaries. */
export function slurmAvailable(): Availability {
  const ns = namespacesAvailable();
  if (!ns.ok) return ns;
  for (const bin of ['munged', 'slurmctld', 'slurmd', 'srun', 'sbatch', 'sinfo', 'scontrol'])
    if (!which(bin)) return { ok: false, reason: `${bin} not found (${PACKAGES})` };
  return { ok: true };
}

export interface SlurmCluster {
  pair: TwoNodes;
  /** Its folder (inside pair.dir): slurm.conf, munge key and socket, spool, state, logs. */
  dir: string;
  conf: string;
  /** What a client needs besides being on a node: SLURM_CONF. */
  env: Record<string, string>;
  /** Where slurmctld runs; run() and exec() start clients here. */
  controller: Node;
  partition: string;
  /** A client (srun, sbatch, sinfo, scontrol...) on the controller node, output collected. */
  run(cmd: string, args?: string[], opts?: RunOptions): Promise<RunResult>;
  /** A client left running (e.g. an srun to kill). */
  exec(cmd: string, args?: string[], opts?: ExecOptions): ChildProcess;
  /**
   * Polls `scontrol show job` (every 100 ms, at most timeoutMs, default 30 s) until the job has
   * ended; faster than `sbatch --wait`, which checks only every few seconds.
   */
  waitForJob(jobId: string, o?: { timeoutMs?: number }): Promise<{ state: string; exitCode: string }>;
  /** The last `lines` lines of each daemon's log, for error messages. */
  logs(lines?: number): string;
  /** Stops every daemon (SIGTERM, SIGKILL after 5 s) and any step left; closes the pair if it made it. Idempotent. */
  close(): Promise<void>;
}

interface Daemon {
  name: string;
  child: ChildProcess;
  /** Its stdout and stderr (where a daemon reports what stops it before its log file is open). */
  out: string;
  /** Slurm's own log file (timestamped), when it has one. */
  log?: string;
  exited: Promise<void>;
  exit: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The environment minus any SLURM_* of an enclosing job, which would confuse clients and daemons. */
const baseEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SLURM_'))) as Record<string, string>;

function tail(file: string, lines: number) {
  if (!existsSync(file)) return '(no log)';
  const all = readFileSync(file, 'utf8').trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

/** slurm.conf for the two nodes; the first is also the controller. */
function slurmConf(pair: TwoNodes, d: (...p: string[]) => string, socket: string, partition: string) {
  const [n1] = pair.nodes;
  return [
    'ClusterName=slfer',
    // The controller is the first node: the namespaces reach nothing else, the host included.
    `SlurmctldHost=${n1.name}(${n1.addr})`,
    'SlurmUser=root',
    'SlurmdUser=root',
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `AuthInfo=socket=${socket}`,
    `StateSaveLocation=${d('state')}`,
    `SlurmdSpoolDir=${d('spool', '%n')}`,
    `SlurmctldPidFile=${d('slurmctld.pid')}`,
    `SlurmdPidFile=${d('spool', '%n', 'slurmd.pid')}`,
    `SlurmctldLogFile=${d('log', 'slurmctld.log')}`,
    `SlurmdLogFile=${d('log', 'slurmd-%n.log')}`,
    'LogTimeFormat=iso8601_ms',
    // No cgroups: both slurmd share the machine's, and linuxproc + task/none need none.
    // (proctrack/pgid works too, but polls for the batch script's process group to be gone with
    // sleeps of 1 s, then 2 s...: 3 s more for every sbatch job here.)
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_CPU',
    'MpiDefault=none',
    'SwitchType=switch/none',
    'ReturnToService=2',
    // Both slurmd see the same 2 cores; the configured CPUs count, not what each detects.
    'SlurmdParameters=config_overrides',
    'KillWait=2',
    ...pair.nodes.map((n) => `NodeName=${n.name} NodeAddr=${n.addr} CPUs=2 State=UNKNOWN`),
    `PartitionName=${partition} Nodes=${pair.nodes.map((n) => n.name).join(',')} Default=YES MaxTime=INFINITE State=UP`,
    '',
  ].join('\n');
}

const RUNNING_STATES = ['PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED', 'REQUEUED', 'RESIZING'];
const STRAYS = ['slurmstepd', 'slurmd', 'slurmctld', 'munged'];

/**
 * Starts munged, slurmctld and two slurmd on `pair` (made here, and closed by close(), when not
 * given) and waits, at most readyTimeoutMs (default 30 s), until sinfo reports both nodes idle.
 * On failure everything started is stopped and the error carries the daemons' log tails.
 */
export async function slurmCluster(o: { pair?: TwoNodes; readyTimeoutMs?: number; partition?: string } = {}): Promise<SlurmCluster> {
  const avail = slurmAvailable();
  if (!avail.ok) throw new Error(`slurmCluster: ${avail.reason}`);
  const ownPair = !o.pair;
  const pair = o.pair ?? (await twoNodes());
  const [n1, n2] = pair.nodes;
  const partition = o.partition ?? 'test';
  const dir = join(pair.dir, 'slurm');
  const d = (...p: string[]) => join(dir, ...p);
  const socket = d('munge', 'run', 'munge.socket');
  const conf = d('slurm.conf');
  const env = { SLURM_CONF: conf };
  const clientEnv = (extra?: NodeJS.ProcessEnv) => ({ ...baseEnv(), ...extra, ...env });
  const daemons: Daemon[] = [];

  const start = (name: string, node: Node, bin: string, args: string[], log?: string) => {
    const out = d('log', `${name}.out`);
    const fd = openSync(out, 'a');
    try {
      const child = pair.exec(node, bin, args, { stdio: ['ignore', fd, fd], env: clientEnv() });
      const daemon: Daemon = { name, child, out, log, exit: null, exited: Promise.resolve() };
      daemon.exited = new Promise<void>((resolve) => {
        child.on('error', (e) => {
          daemon.exit = `could not start: ${e.message}`;
          resolve();
        });
        child.on('exit', (code, signal) => {
          daemon.exit = signal ? `killed by ${signal}` : `exited with ${code}`;
          resolve();
        });
      });
      daemons.push(daemon);
      return daemon;
    } finally {
      closeSync(fd);
    }
  };
  const logs = (lines = 15) =>
    daemons
      .map((x) => {
        const files = x.log && existsSync(x.log) ? (x.exit ? [x.log, x.out] : [x.log]) : [x.out];
        return files.map((f) => `--- ${x.name} (${f})${x.exit ? `, ${x.exit}` : ''}:\n${tail(f, lines)}`).join('\n');
      })
      .join('\n');
  const run = (cmd: string, args: string[] = [], opts: RunOptions = {}) => pair.run(n1, cmd, args, { ...opts, env: clientEnv(opts.env) });

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      for (const x of [...daemons].reverse()) if (!x.exit) x.child.kill('SIGTERM');
      const all = Promise.all(daemons.map((x) => x.exited));
      if (!(await Promise.race([all.then(() => true), sleep(5000).then(() => false)]))) {
        for (const x of daemons) if (!x.exit) x.child.kill('SIGKILL');
        await Promise.race([all, sleep(5000)]);
      }
      // A step whose srun was killed may leave its slurmstepd behind for a while.
      for (const pid of pair.pids()) {
        let comm = '';
        try {
          comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
          if (STRAYS.includes(comm)) process.kill(pid, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
      }
      const stuck = daemons.filter((x) => !x.exit && x.child.pid !== undefined && isRunning(x.child.pid));
      if (ownPair) await pair.close();
      if (stuck.length) throw new Error(`slurmCluster close: ${stuck.map((x) => x.name).join(', ')} did not exit`);
    })());
  const fail = (what: string) => new Error(`slurmCluster: ${what}\n${logs()}`);

  try {
    // munged checks modes: its key folder private, its socket folder (and those above) open to all.
    mkdirSync(d('munge'), { recursive: true, mode: 0o755 });
    mkdirSync(d('munge', 'key'), { mode: 0o700 });
    mkdirSync(d('munge', 'run'), { mode: 0o755 });
    for (const sub of ['state', 'log', ...pair.nodes.map((n) => join('spool', n.name))]) mkdirSync(d(sub), { recursive: true, mode: 0o755 });
    writeFileSync(d('munge', 'key', 'munge.key'), randomBytes(1024), { mode: 0o400 });
    writeFileSync(conf, slurmConf(pair, d, socket, partition));

    // munged lives in the controller's namespace (it needs none: its socket is a file both nodes
    // reach) so that pair.close() and cleanLeftovers() also catch it after a crash. -f turns its
    // checks of folder modes into warnings, should TMPDIR's parents be looser than it likes.
    const munged = start('munged', n1, which('munged')!, ['-F', '-f', `--socket=${socket}`, `--key-file=${d('munge', 'key', 'munge.key')}`, `--pid-file=${d('munge', 'run', 'munged.pid')}`, `--seed-file=${d('munge', 'key', 'seed')}`]);
    for (let i = 0; !existsSync(socket); i++) {
      if (munged.exit || i >= 100) throw fail(`munged did not create ${socket} within 5 s`);
      await sleep(50);
    }
    start('slurmctld', n1, which('slurmctld')!, ['-D', '-i', '-f', conf], d('log', 'slurmctld.log'));
    for (const n of pair.nodes) start(`slurmd-${n.name}`, n, which('slurmd')!, ['-D', '-N', n.name, '-f', conf], d('log', `slurmd-${n.name}.log`));

    const timeoutMs = o.readyTimeoutMs ?? 30_000;
    const t0 = Date.now();
    for (let i = 0; ; i++) {
      const dead = daemons.find((x) => x.exit);
      if (dead) throw fail(`${dead.name} ${dead.exit} before both nodes were idle`);
      const r = await run('sinfo', ['-h', '-N', '-o', '%N %t'], { timeoutMs: 10_000 });
      const states = new Map(r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/) as [string, string]));
      if (r.code === 0 && pair.nodes.every((n) => states.get(n.name) === 'idle')) break;
      if (Date.now() - t0 > timeoutMs || i >= 200)
        throw fail(`nodes ${n1.name} and ${n2.name} were not both idle within ${timeoutMs} ms (last sinfo: ${JSON.stringify((r.stdout + r.stderr).trim())}); the daemons' logs:`);
      await sleep(150);
    }
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }

  const waitForJob = async (jobId: string, { timeoutMs = 30_000 } = {}) => {
    const t0 = Date.now();
    let last = '';
    for (let i = 0; Date.now() - t0 < timeoutMs && i < 1000; i++) {
      const r = await run('scontrol', ['-o', 'show', 'job', jobId], { timeoutMs: 10_000 });
      last = (r.stdout + r.stderr).trim();
      const state = /\bJobState=(\S+)/.exec(r.stdout)?.[1];
      // Any other state is final (COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL...).
      if (state && !RUNNING_STATES.includes(state)) return { state, exitCode: /\bExitCode=(\S+)/.exec(r.stdout)?.[1] ?? '' };
      await sleep(100);
    }
    throw new Error(`slurmCluster: job ${jobId} had not ended after ${timeoutMs} ms (last: ${last})\n${logs()}`);
  };

  return {
    pair,
    dir,
    conf,
    env,
    controller: n1,
    partition,
    run,
    exec: (cmd, args = [], opts = {}) => pair.exec(n1, cmd, args, { ...opts, env: clientEnv(opts.env) }),
    waitForJob,
    logs,
    close,
  };
}
