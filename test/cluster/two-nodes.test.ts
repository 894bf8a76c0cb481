import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_RETRYABLE } from '../../cluster/failure-policy.js';
import { writeRunKey } from '../../cluster/security/run-key.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { HYDRA_BIN, mpichAvailable, mpiHosts, OPENMPI_BIN, openMpiAvailable } from '../helpers/mpi-cluster.js';
import { clusterRequired, isRunning, namespacesAvailable, skipReason, twoNodes, which, type Node, type TwoNodes } from '../helpers/netns.js';
import { slurmAvailable, slurmCluster, type SlurmCluster } from '../helpers/slurm-cluster.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';
import { expectSameWeights as sameWeights } from '../helpers/weights.js';

// slfer-dist across two real "machines": two network namespaces joined by one veth
// (test/helpers/netns.ts), each with its own hostname and /etc/hosts. Real CLI processes, started
// the ways a user would: one `launch --nnodes 2` agent per node, the shipped mpirun template under
// Open MPI and MPICH, and the shipped sbatch template on a real Slurm cluster. Every multi-node run
// must end with the weights of `launch --workers 2` on one machine, bit for bit; a node that dies
// or drops off the network must take the run down everywhere within seconds, leaving nothing behind.
// Needs root and the packages .ci/run installs; elsewhere each suite is skipped with its reason.

const REPO = join(import.meta.dirname, '..', '..');
const BIN = join(REPO, 'bin', 'slfer-dist.js');
const MPIRUN_TEMPLATE = join(REPO, 'cluster', 'templates', 'mpi', 'mpirun.sh');
const SBATCH_TEMPLATE = join(REPO, 'cluster', 'templates', 'slurm', 'slfer.sbatch');

const ns = namespacesAvailable();
const slurm = slurmAvailable();
const openMpi = openMpiAvailable();
const mpich = mpichAvailable();

it('the namespaces, Slurm, Open MPI and MPICH are all usable wherever the cluster tests are required (CI)', () => {
  if (!clusterRequired) return;
  for (const a of [ns, slurm, openMpi, mpich]) expect(a.ok ? 'ok' : a.reason).toBe('ok');
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls (every 50 ms, at most `ms`) until `done()`; whether it ever was. */
async function until(done: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (done()) return true;
    await sleep(50);
  }
  return done();
}
/** `p`, or `fallback` once `ms` have passed. */
const within = <T, F>(p: Promise<T>, ms: number, fallback: F) => Promise.race([p, sleep(ms).then(() => fallback)]);

/**
 * The environment of every slfer process here: one engine thread (as launch gives its workers on
 * this 2-core machine, so the weights compare bitwise on any machine), and nothing of a launcher
 * this test itself may run under.
 */
const ENV: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(SLFER_|SLURM_|OMPI_|PMI_|PMIX_|TORCHELASTIC_|MASTER_|RANK$|WORLD_SIZE$|LOCAL_RANK$)/.test(k))),
  OMP_NUM_THREADS: '1',
  FORCE_COLOR: '0',
};

interface Proc {
  child: ChildProcess;
  what: string;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  done: boolean;
}
function watch(child: ChildProcess, what: string): Proc {
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (text += d));
  const p: Proc = { child, what, out: () => text, done: false, exited: Promise.resolve({ code: null, signal: null }) };
  p.exited = new Promise((resolve) => {
    child.on('error', (e) => {
      text += `\n(could not start: ${e.message})`;
      p.done = true;
      resolve({ code: null, signal: null });
    });
    child.on('close', (code, signal) => {
      p.done = true;
      resolve({ code, signal });
    });
  });
  return p;
}

const children: Proc[] = [];
let data: Awaited<ReturnType<typeof syntheticDataset>>;
let configFile: string;
/** Long enough to be killed mid-run. */
let longConfigFile: string;
// Three epochs: the Slurm case kills a rank after the first checkpoint and still has two to go.
const EPOCHS = 3;
beforeAll(async () => {
  if (!ns.ok) return; // every suite below is skipped
  data = await syntheticDataset({ train: 32, test: 8, size: 32 });
  configFile = join(data.base, 'config.json');
  writeFileSync(configFile, JSON.stringify(tinyConfig(data.root, 32, { epochs: EPOCHS, batchSize: 4 })));
  longConfigFile = join(data.base, 'long.json');
  writeFileSync(longConfigFile, JSON.stringify(tinyConfig(data.root, 32, { epochs: 200, batchSize: 4 })));
});
afterAll(() => {
  for (const c of children) if (!c.done) c.child.kill('SIGKILL');
  data?.cleanup();
});

/** `slfer-dist launch ...` in the host's own namespace. */
function startHere(args: string[]): Proc {
  const p = watch(spawn(process.execPath, [BIN, 'launch', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: ENV }), `launch ${args.join(' ')}`);
  children.push(p);
  return p;
}

let referenceRun: Promise<string> | undefined;
/** The same run on one machine, `launch --workers 2`: what every multi-node way must reproduce bitwise. */
const reference = () =>
  (referenceRun ??= (async () => {
    const out = join(data.base, 'reference');
    const p = startHere(['--workers', '2', '--config', configFile, '--out', out]);
    const r = await within(p.exited, 120_000, null);
    if (r?.code !== 0) throw new Error(`the reference run (launch --workers 2) failed (${JSON.stringify(r)}):\n${p.out()}`);
    return join(out, 'checkpoints');
  })());

/** Params, BN buffers and epoch of the last checkpoints of two runs are identical. */
function expectSameWeights(a: string, b: string): void {
  sameWeights(a, b);
  expect(loadCheckpoint(b).epoch).toBe(EPOCHS);
}
/** The processes in one node's namespace (zombies excluded). */
const nodePids = (n: Node): number[] =>
  execFileSync(which('ip')!, ['netns', 'pids', n.ns], { encoding: 'utf8' })
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
};
const environ = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  } catch {
    return [];
  }
};
/** What runs in the namespaces, for failure messages. */
const describePids = (pair: TwoNodes) => pair.pids().map((p) => `${p}: ${cmdline(p).slice(0, 200)}`);

/** Bytes received on a node's veth end (the gradients' way between the nodes). */
const rxBytes = (n: Node): number => {
  const [link] = JSON.parse(execFileSync(which('ip')!, ['-n', n.ns, '-j', '-s', 'link', 'show', n.ifname], { encoding: 'utf8' })) as { stats64: { rx: { bytes: number } } }[];
  return link.stats64.rx.bytes;
};

const nsSkip = skipReason('the two-node launches', ns);
describe.skipIf(nsSkip !== '')(`slfer-dist on two machines (network namespaces)${nsSkip ? ` (skipped: ${nsSkip})` : ''}`, () => {
  let pair: TwoNodes;
  let port = 29_400;
  beforeAll(async () => {
    pair = await twoNodes();
  });
  afterAll(async () => {
    for (const c of children) if (!c.done) c.child.kill('SIGKILL');
    await pair?.close();
  });

  /** One node's agent: `launch --nnodes 2 --node-rank R --nproc-per-node 1 --rdzv-endpoint n1:PORT` with `security` (a run key, or --insecure). */
  const agent = (node: Node, p: number, config: string, out: string, security: string[], perNode = 1): Proc => {
    const args = [BIN, 'launch', '--nnodes', '2', '--node-rank', String(node.index), '--nproc-per-node', String(perNode), '--rdzv-endpoint', `${pair.nodes[0].addr}:${p}`, ...security, '--config', config, '--out', out];
    const proc = watch(pair.exec(node, process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: ENV }), `node ${node.index} (${node.name})`);
    children.push(proc);
    return proc;
  };
  const agents = (config: string, name: string, security = ['--insecure'], perNode = 1) => {
    const p = ++port;
    const outs = pair.nodes.map((n) => join(data.base, `${name}-node${n.index}`));
    return { outs, procs: pair.nodes.map((n, i) => agent(n, p, config, outs[i], security, perNode)) as [Proc, Proc] };
  };
  /** Nothing is left in either namespace (within `ms`: a process being reaped). */
  const expectNothingLeft = async (ms = 3000) => {
    await until(() => pair.pids().length === 0, ms);
    expect(describePids(pair)).toEqual([]);
  };

  it('--nnodes 2 with a run key (CURVE on every socket), one worker a node: the workers are on 2 machines, rank 1 advertises n2\'s address, gradients cross the veth, node 1 writes no run folder, and the weights equal `launch --workers 2` bitwise', async () => {
    const ref = reference();
    const [n1, n2] = pair.nodes;
    const rxBefore = rxBytes(n2);
    const key = join(data.base, 'run.key');
    if (!existsSync(key)) writeRunKey(key);
    const { outs, procs } = agents(configFile, 'nnodes', ['--auth-key', key]);
    const [r0, r1] = await within(Promise.all(procs.map((p) => p.exited)), 120_000, [null, null]);
    expect(r0?.code, procs[0].out()).toBe(0);
    expect(r1?.code, procs[1].out()).toBe(0);
    expect(procs[0].out()).toMatch(/launched 2 workers on 2 machines on /);
    // Node 1's agent found its own address from the route to n1, never loopback.
    const line = /node 1: started ranks 1 \(attempt 0\), coordinator (\S+), advertising (\S+)/.exec(procs[1].out());
    expect(line, procs[1].out()).not.toBeNull();
    expect(line![1]).toBe(`tcp://${n1.addr}:${port}`);
    expect(line![2]).toBe(n2.addr);
    expect(procs[1].out()).not.toMatch(/127\.0\.0\.1/);
    expect(procs[1].out()).toMatch(/node 1: done \(rank 0 holds the run folder/);
    expect(existsSync(outs[1])).toBe(false);
    // Each step's gradients (217,371 float32, half of them each way per all-reduce) went over the
    // veth, not over a Unix socket the two "machines" could share: 12 steps, about 10 MB.
    const steps = EPOCHS * (32 / 2 / 4);
    expect(rxBytes(n2) - rxBefore).toBeGreaterThan(steps * 217_371 * 4 * 0.5);
    expectSameWeights(await ref, join(outs[0], 'checkpoints'));
    await expectNothingLeft();
  }, 180_000);

  it('--nnodes 2 --nproc-per-node 2: neighbours on one node talk over ipc, across nodes over tcp, and the run completes with equal weights on all 4 ranks', async () => {
    const { procs } = agents(configFile, 'four', ['--insecure'], 2);
    const [r0, r1] = await within(Promise.all(procs.map((p) => p.exited)), 150_000, [null, null]);
    expect(r0?.code, procs[0].out()).toBe(0);
    expect(r1?.code, procs[1].out()).toBe(0);
    expect(procs[0].out()).toMatch(/launched 4 workers on 2 machines/);
    expect(procs[0].out()).toContain('ring: 0 ─ipc→ 1 ─tcp→ 2 ─ipc→ 3 ─tcp→ 0');
    expect(procs[0].out()).toMatch(/checksum [0-9a-f]{16} equal on all 4 ranks/);
    await expectNothingLeft();
  }, 180_000);

  /** Starts a long run on both nodes and waits until it is training (epoch 2 begun on node 0). */
  const midRun = async (name: string) => {
    const run = agents(longConfigFile, name);
    const [a0, a1] = run.procs;
    const training = await until(() => /epoch 2\/200/.test(a0.out()) || a0.done || a1.done, 90_000);
    expect(training && !a0.done && !a1.done, `node 0:\n${a0.out()}\nnode 1:\n${a1.out()}`).toBe(true);
    const [n1, n2] = pair.nodes;
    const on1 = nodePids(n1);
    const on2 = nodePids(n2);
    // Each node: its agent and the worker it forked.
    expect(on1.length, describePids(pair).join('\n')).toBeGreaterThanOrEqual(2);
    expect(on2.length, describePids(pair).join('\n')).toBeGreaterThanOrEqual(2);
    return { ...run, on1, on2 };
  };

  it('a whole node SIGKILLed mid-run: node 0\'s agent and worker exit within 10 s, the agent with 75 (a retry may help), and nothing is left on either node', async () => {
    const { procs, on1, on2 } = await midRun('killed');
    const [a0] = procs;
    const t0 = Date.now();
    for (const pid of on2) process.kill(pid, 'SIGKILL');
    const r0 = await within(a0.exited, 15_000, null);
    const took = Date.now() - t0;
    expect(r0, `node 0 still running after 15 s:\n${a0.out()}`).not.toBeNull();
    expect(took, a0.out()).toBeLessThan(10_000);
    // 75: a retry may help (a lost peer), which is what a launcher's retry loop goes by.
    expect(r0!.code, a0.out()).toBe(EXIT_RETRYABLE);
    // Its worker too (it is not our child: gone is what we can see).
    expect(await until(() => on1.every((p) => !isRunning(p)), Math.max(0, 10_000 - took)), describePids(pair).join('\n')).toBe(true);
    expect(a0.out()).toMatch(/SLFER_CLUSTER_RING_UNUSABLE: .*the connection to rank 1 was lost|SLFER_CLUSTER_HEARTBEAT_LOST: .*rank 1/);
    await expectNothingLeft();
  }, 150_000);

  it("a node's link down mid-run: the agents and workers on both sides exit within 10 s, both agents with 75, and nothing is left on either node", async () => {
    const { procs, on1, on2 } = await midRun('linkdown');
    const t0 = Date.now();
    pair.linkDown('n2');
    try {
      const [r0, r1] = await within(Promise.all(procs.map((p) => p.exited)), 15_000, [null, null]);
      const took = Date.now() - t0;
      expect(r0, `node 0 still running 15 s after the link went down:\n${procs[0].out()}`).not.toBeNull();
      expect(r1, `node 1 still running 15 s after the link went down:\n${procs[1].out()}`).not.toBeNull();
      expect(took).toBeLessThan(10_000);
      for (const [i, r] of [r0!, r1!].entries()) expect(r.code, procs[i].out()).toBe(EXIT_RETRYABLE);
      expect(await until(() => [...on1, ...on2].every((p) => !isRunning(p)), Math.max(0, 10_000 - took)), describePids(pair).join('\n')).toBe(true);
      // Each side names what it lost: node 0 its ring neighbour, node 1 the coordinator.
      expect(procs[0].out()).toMatch(/SLFER_CLUSTER_RING_UNUSABLE: .*the connection to rank 1 was lost|SLFER_CLUSTER_HEARTBEAT_LOST: .*rank 1/);
      expect(procs[1].out()).toMatch(/SLFER_CLUSTER_HEARTBEAT_LOST: worker rank 1: lost the coordinator|SLFER_CLUSTER_RING_UNUSABLE: .*rank 1/);
      await expectNothingLeft();
    } finally {
      pair.linkUp('n2');
    }
  }, 150_000);

  /** The shipped mpirun template on n1, one rank on each node. */
  const mpirunTemplate = async (launcher: string, extra: string[], name: string) => {
    const ref = reference();
    const hosts = mpiHosts(pair);
    const out = join(data.base, name);
    const env = {
      ...ENV,
      SLFER_HOSTS: pair.nodes.map((n) => `${n.name}:1`).join(','),
      SLFER_MASTER_PORT: String(++port),
      SLFER_BIN: `${process.execPath} ${BIN}`,
      MPIRUN: launcher,
      MPIRUN_ARGS: extra.map((a) => a.replace('AGENT', hosts.agent)).join(' '),
      // Some Open MPI builds read only these to allow root.
      OMPI_ALLOW_RUN_AS_ROOT: '1',
      OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
    };
    const r = await pair.run('n1', 'bash', [MPIRUN_TEMPLATE, '--config', configFile, '--out', out, '--insecure'], { env, timeoutMs: 150_000 });
    const log = `${r.stdout}\n${r.stderr}`;
    expect(r.timedOut, log).toBe(false);
    expect(r.code, log).toBe(0);
    expect(log).toMatch(/launched 2 workers on 2 machines on /);
    expect(log).toMatch(new RegExp(`rank 1 of 2 \\(${launcher === OPENMPI_BIN ? 'openmpi' : 'mpich'}, attempt 0\\): joining the coordinator at n1:${port}`));
    expectSameWeights(await ref, join(out, 'checkpoints'));
    await expectNothingLeft();
  };

  const ompiSkip = skipReason('Open MPI', openMpi);
  it.skipIf(ompiSkip !== '')(`Open MPI: the mpirun template runs rank 0 on n1 and rank 1 on n2, and the weights equal \`launch --workers 2\` bitwise${ompiSkip ? ` (skipped: ${ompiSkip})` : ''}`, async () => {
    // Only the veth: Open MPI otherwise offers its peers every interface it finds (loopback included).
    await mpirunTemplate(OPENMPI_BIN, ['--allow-run-as-root', '--mca', 'plm_rsh_agent', 'AGENT', '--mca', 'oob_tcp_if_include', pair.nodes[0].ifname, '--mca', 'btl_tcp_if_include', pair.nodes[0].ifname], 'openmpi');
  }, 180_000);

  const mpichSkip = skipReason('MPICH', mpich);
  it.skipIf(mpichSkip !== '')(`MPICH Hydra: the same template runs rank 0 on n1 and rank 1 on n2, and the weights equal \`launch --workers 2\` bitwise${mpichSkip ? ` (skipped: ${mpichSkip})` : ''}`, async () => {
    await mpirunTemplate(HYDRA_BIN, ['-launcher', 'ssh', '-launcher-exec', 'AGENT', '-iface', pair.nodes[0].ifname], 'mpich');
  }, 180_000);
});

const slurmSkip = skipReason('the Slurm launch', slurm);
describe.skipIf(slurmSkip !== '')(`slfer-dist under Slurm on two machines${slurmSkip ? ` (skipped: ${slurmSkip})` : ''}`, () => {
  let cluster: SlurmCluster;
  beforeAll(async () => {
    cluster = await slurmCluster();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('the sbatch template: rank 1 SIGKILLed after the first checkpoint, its retry loop starts a new step, --resume auto continues, the job completes, attempts.json records both attempts, and the weights equal the uninterrupted run bitwise', async () => {
    const ref = reference();
    const pair = cluster.pair;
    const [, n2] = pair.nodes;
    const out = join(data.base, 'slurm');
    const jobOut = join(cluster.dir, 'slfer-job.out');
    const env = { ...ENV, SLFER_CONFIG: configFile, SLFER_OUT: out, SLFER_BIN: `${process.execPath} ${BIN}`, SLFER_INSECURE: '1', SLFER_MASTER_PORT: '29611', SLFER_RETRIES: '2' };
    const sub = await cluster.run('sbatch', ['--parsable', '--export=ALL', '--chdir', cluster.dir, '-o', jobOut, SBATCH_TEMPLATE], { env, timeoutMs: 30_000 });
    expect(sub.code, `${sub.stdout}${sub.stderr}\n${cluster.logs()}`).toBe(0);
    const jobId = sub.stdout.trim().split(';')[0];
    expect(jobId).toMatch(/^\d+$/);
    const jobText = () => (existsSync(jobOut) ? readFileSync(jobOut, 'utf8') : '(no job output yet)');

    // Once the first epoch's checkpoint exists, the run is in its second epoch: kill rank 1 there.
    const ckpts = join(out, 'checkpoints');
    const checkpointed = await until(() => existsSync(ckpts) && readdirSync(ckpts).some((f) => /^epoch-\d+$/.test(f)), 120_000);
    expect(checkpointed, `no checkpoint within 120 s; job output:\n${jobText()}\n${cluster.logs()}`).toBe(true);
    const rank1 = nodePids(n2).find((pid) => cmdline(pid).includes(`${BIN} launch`) && environ(pid).includes('SLURM_PROCID=1'));
    expect(rank1, `no rank 1 slfer process on n2: ${describePids(pair).join('\n')}\n${jobText()}`).toBeDefined();
    expect(environ(rank1!)).toContain('SLURM_STEP_ID=0');
    process.kill(rank1!, 'SIGKILL');

    const end = await cluster.waitForJob(jobId, { timeoutMs: 150_000 });
    const text = jobText();
    expect(end, text).toEqual({ state: 'COMPLETED', exitCode: '0:0' });
    expect(text).toMatch(/slfer-dist: step 0 lost a peer \(exit code \d+\); retrying from the newest checkpoint/);
    expect(text).toMatch(/rank 1 of 2 \(slurm, attempt 1\)/);
    expect(text).not.toMatch(/gave up/);
    const attempts = JSON.parse(readFileSync(join(out, 'attempts.json'), 'utf8')) as { attempt: number; outcome?: string; startEpoch: number; resumedFrom: string | null; failure?: { code: string; epoch?: number } }[];
    expect(attempts.map((a) => a.outcome), JSON.stringify(attempts, null, 1)).toEqual(['failed', 'succeeded']);
    // Rank 0 wrote down why: the lost peer, or srun -K1's SIGTERM when that came first (a step
    // in progress delays the disconnect's event), in the epoch after the first checkpoint or later.
    expect(`${attempts[0].failure?.code} ${(attempts[0].failure as { message?: string } | undefined)?.message}`).toMatch(/^SLFER_CLUSTER_(RING_UNUSABLE|HEARTBEAT_LOST) |^SLFER_ABORTED the launched run was stopped by SIGTERM/);
    expect(attempts[0].failure?.epoch).toBeGreaterThanOrEqual(2);
    expect(attempts[0].startEpoch).toBe(0);
    expect(attempts[1].startEpoch).toBeGreaterThanOrEqual(1);
    expect(attempts[1].resumedFrom).toMatch(/epoch-\d+/);
    expectSameWeights(await ref, ckpts);
    // No slfer process outlived the job on either node.
    await until(() => !pair.pids().some((p) => cmdline(p).includes(BIN)), 5000);
    expect(pair.pids().filter((p) => cmdline(p).includes(BIN)).map((p) => `${p}: ${cmdline(p)}`)).toEqual([]);
  }, 240_000);
});
