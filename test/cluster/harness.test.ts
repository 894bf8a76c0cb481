import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hydraLaunch, mpichAvailable, openMpiAvailable, openMpiLaunch, type Launch } from '../helpers/mpi-cluster.js';
import { cleanLeftovers, clusterRequired, isRunning, namespacesAvailable, PREFIX, skipReason, twoNodes, which, type TwoNodes } from '../helpers/netns.js';
import { slurmAvailable, slurmCluster, type SlurmCluster } from '../helpers/slurm-cluster.js';

// The harness behind the multi-node tests and benchmarks: two network namespaces joined by one veth
// ("nodes" n1 and n2), a real Slurm cluster on them, and Open MPI / MPICH launches across them.
// Needs root and the packages .ci/run installs; elsewhere each suite is skipped with its reason.

const ns = namespacesAvailable();
const slurm = slurmAvailable();
const openMpi = openMpiAvailable();
const mpich = mpichAvailable();

it('the namespaces, Slurm, Open MPI and MPICH are all usable wherever the cluster tests are required (CI)', () => {
  if (!clusterRequired) return;
  for (const a of [ns, slurm, openMpi, mpich]) expect(a.ok ? 'ok' : a.reason).toBe('ok');
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const namespaces = () => (existsSync('/run/netns') ? readdirSync('/run/netns') : []);
const ip = (...args: string[]) => execFileSync(which('ip')!, args, { encoding: 'utf8' });

/** Polls until `done()` (at most `ms`, every 25 ms); false if it never was. */
async function until(done: () => boolean, ms: number) {
  for (let t = 0; t < ms; t += 25) {
    if (done()) return true;
    await sleep(25);
  }
  return done();
}

/** A child's stdout as lines, to wait (bounded) for the next one that matches. */
class Lines {
  readonly lines: string[] = [];
  stderr = '';
  private buf = '';
  private cursor = 0;
  constructor(
    readonly child: ChildProcess,
    readonly what: string,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.buf += d;
      for (let i; (i = this.buf.indexOf('\n')) >= 0; this.buf = this.buf.slice(i + 1)) this.lines.push(this.buf.slice(0, i));
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
  }
  private find(re: RegExp) {
    const i = this.lines.findIndex((l, j) => j >= this.cursor && re.test(l));
    if (i >= 0) this.cursor = i + 1;
    return i >= 0 ? this.lines[i] : null;
  }
  async next(re: RegExp, ms = 10_000): Promise<string> {
    let hit: string | null = null;
    if (!(await until(() => (hit = this.find(re)) !== null, ms)))
      throw new Error(`${this.what}: no line matching ${re} within ${ms} ms; stdout ${JSON.stringify(this.lines.slice(this.cursor))}, stderr ${JSON.stringify(this.stderr)}`);
    return hit!;
  }
  /** Nothing after the cursor matches `re` during `ms`. */
  async none(re: RegExp, ms: number) {
    await sleep(ms);
    return this.lines.slice(this.cursor).filter((l) => re.test(l));
  }
  send(line: string) {
    this.child.stdin!.write(`${line}\n`);
  }
}

// An echo server, and a client driven by lines on stdin: `connect NAME HOST PORT [TIMEOUT_MS]`,
// `send NAME TEXT`; it prints `NAME connected`, `NAME recv TEXT`, `NAME error CODE`.
const ECHO_SERVER = `require('node:net').createServer((s) => s.pipe(s)).listen(+process.argv[1], process.argv[2], () => console.log('listening'));`;
const CLIENT = `
const net = require('node:net');
const socks = new Map();
const say = (...a) => console.log(a.join(' '));
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const [op, name, ...rest] = l.split(' ');
  if (op === 'send') return socks.get(name).write(rest.join(' ') + '\\n');
  const [host, port, timeout] = rest;
  const s = net.connect({ host, port: +port, timeout: +(timeout || 3000) });
  socks.set(name, s);
  s.setEncoding('utf8');
  s.on('connect', () => { s.setTimeout(0); say(name, 'connected'); });
  s.on('timeout', () => { say(name, 'error ETIMEDOUT'); s.destroy(); });
  s.on('error', (e) => say(name, 'error', e.code));
  let buf = '';
  s.on('data', (d) => { buf += d; for (let i; (i = buf.indexOf('\\n')) >= 0; buf = buf.slice(i + 1)) say(name, 'recv', buf.slice(0, i)); });
}).on('close', () => process.exit(0));
`;
const PORT = 7777;

const nsSkip = skipReason('the two-node namespaces', ns);
describe.skipIf(nsSkip !== '')(`two network namespaces joined by one veth${nsSkip ? ` (skipped: ${nsSkip})` : ''}`, () => {
  let pair: TwoNodes;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    pair = await twoNodes();
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await pair?.close();
  });
  const server = async (node: string) => {
    const s = new Lines(pair.exec(node, process.execPath, ['-e', ECHO_SERVER, String(PORT), '0.0.0.0']), `echo server on ${node}`);
    children.push(s.child);
    await s.next(/^listening$/);
    return s;
  };
  const client = (node: string) => {
    const c = new Lines(pair.exec(node, process.execPath, ['-e', CLIENT]), `client on ${node}`);
    children.push(c.child);
    return c;
  };

  it("gives each node its own hostname and an /etc/hosts naming both, leaving the host's alone", async () => {
    const hostsBefore = readFileSync('/etc/hosts', 'utf8');
    const [n1, n2] = pair.nodes;
    const r1 = await pair.run('n1', 'sh', ['-c', 'hostname; getent hosts n1 n2']);
    expect(r1.code, r1.stderr).toBe(0);
    const [name, ...hosts] = r1.stdout.trim().split('\n');
    expect(name).toBe('n1');
    expect(hosts.map((l) => l.split(/\s+/))).toEqual([
      [n1.addr, 'n1'],
      [n2.addr, 'n2'],
    ]);
    expect((await pair.run('n2', 'hostname')).stdout.trim()).toBe('n2');
    // Without identity a process is only in the namespace: the host's name and files.
    expect((await pair.run('n2', 'hostname', [], { identity: false })).stdout.trim()).toBe(hostname());
    expect(hostname()).not.toMatch(/^n[12]$/);
    expect(readFileSync('/etc/hosts', 'utf8')).toBe(hostsBefore);
  });

  it('lets n2 reach a TCP server on n1 by name over the veth', async () => {
    const s = await server('n1');
    const c = client('n2');
    c.send(`connect a n1 ${PORT}`);
    await c.next(/^a connected$/);
    c.send('send a hello over the veth');
    expect(await c.next(/^a recv /)).toBe('a recv hello over the veth');
    s.child.kill('SIGKILL');
    c.child.kill('SIGKILL');
  });

  it("reaches nothing else: not the host's loopback services, not its addresses, nothing beyond", async () => {
    // A server on every host address; the host itself reaches it on each (the control).
    const accepted: string[] = [];
    const host = createServer((s) => {
      accepted.push(String(s.remoteAddress));
      s.destroy();
    });
    await new Promise<void>((r) => host.listen(0, '0.0.0.0', r));
    try {
      const port = (host.address() as { port: number }).port;
      const hostAddrs = Object.values(networkInterfaces())
        .flat()
        .filter((a) => a && a.family === 'IPv4' && !a.internal)
        .map((a) => a!.address);
      for (const addr of ['127.0.0.1', ...hostAddrs])
        await new Promise<void>((resolve, reject) => connect({ host: addr, port }, resolve).on('error', reject).unref());
      await until(() => accepted.length === 1 + hostAddrs.length, 2000);
      const fromHost = accepted.length;
      expect(fromHost).toBe(1 + hostAddrs.length);

      const c = client('n1');
      // 127.0.0.1 in a node is the node's own loopback, where nothing listens.
      c.send(`connect lo 127.0.0.1 ${port}`);
      expect(await c.next(/^lo /)).toBe('lo error ECONNREFUSED');
      for (const [i, addr] of [...hostAddrs, '8.8.8.8', '10.77.0.1'].entries()) {
        c.send(`connect h${i} ${addr} ${port}`);
        expect(await c.next(new RegExp(`^h${i} `)), addr).toBe(`h${i} error ENETUNREACH`);
      }
      c.child.kill('SIGKILL');
      expect(accepted.length).toBe(fromHost);
      // Only loopback and the veth, and only the veth's own subnet routed: no default route.
      for (const n of pair.nodes) {
        const links = (await pair.run(n, 'ip', ['-o', 'link', 'show'])).stdout.trim().split('\n');
        expect(links.map((l) => l.split(/:\s+/)[1].split('@')[0])).toEqual(['lo', 'veth0']);
        expect((await pair.run(n, 'ip', ['-4', 'route', 'show'])).stdout.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^${pair.subnet.replace(/\./g, '\\.')} dev veth0 `))]);
        expect((await pair.run(n, 'ip', ['-6', 'route', 'show'])).stdout).not.toMatch(/default/);
      }
    } finally {
      host.close();
    }
  });

  it('linkDown cuts an open connection and new ones, both ways; linkUp restores both', async () => {
    const s = await server('n2');
    const c = client('n1');
    const [, n2] = pair.nodes;
    c.send(`connect a ${n2.addr} ${PORT}`);
    await c.next(/^a connected$/);
    c.send('send a before');
    expect(await c.next(/^a recv /)).toBe('a recv before');

    pair.linkDown('n1');
    c.send('send a during');
    expect(await c.none(/^a recv during/, 1500)).toEqual([]);
    c.send(`connect b ${n2.addr} ${PORT}`);
    expect(await c.next(/^b /)).toBe('b error ENETUNREACH');
    // From the other side the cable is just gone: no answer (a timeout, or the neighbour lookup
    // giving up, which takes 3 s).
    const back = client('n2');
    back.send(`connect x ${pair.nodes[0].addr} 22 1000`);
    expect(await back.next(/^x /, 5000)).toMatch(/^x error (ETIMEDOUT|EHOSTUNREACH)$/);

    pair.linkUp('n1');
    // TCP retransmits what was sent during the outage (its backoff reached about 1.6 s).
    expect(await c.next(/^a recv /, 15_000)).toBe('a recv during');
    c.send(`connect c ${n2.addr} ${PORT}`);
    await c.next(/^c connected$/, 5000);
    c.send('send c after');
    expect(await c.next(/^c recv /)).toBe('c recv after');
    for (const x of [s, c, back]) x.child.kill('SIGKILL');
  });

  it('close() kills everything in both namespaces (SIGKILL for what ignores SIGTERM), deletes them and its folder, and is idempotent', async () => {
    const hostLinks = () => ip('-o', 'link', 'show').split('\n').map((l) => l.split(':')[1]).join();
    const linksBefore = hostLinks();
    const p = await twoNodes({ names: ['a1', 'a2'] });
    // The veth ends were made inside the namespaces: the host never saw an interface.
    expect(hostLinks()).toBe(linksBefore);
    expect(namespaces()).toEqual(expect.arrayContaining(p.nodes.map((n) => n.ns)));
    p.exec('a1', 'sleep', ['600'], { stdio: 'ignore' });
    p.exec('a2', 'sh', ['-c', 'trap "" TERM; sleep 600'], { stdio: 'ignore' });
    expect(await until(() => p.pids().length >= 3, 5000)).toBe(true);
    const pids = p.pids();
    const t0 = Date.now();
    await p.close({ graceMs: 500 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(pids.filter(isRunning)).toEqual([]);
    expect(namespaces().filter((n) => n.startsWith(p.id))).toEqual([]);
    expect(existsSync(p.dir)).toBe(false);
    expect(p.closed).toBe(true);
    await p.close();
    expect(() => p.exec('a1', 'true')).toThrow(/after close/);
  });

  it("cleanLeftovers removes a dead run's namespaces and the processes in them, and keeps a live run's", async () => {
    const dead = spawnSync('true').pid!; // a pid that no longer exists
    const crashed = `${PREFIX}-${dead}-0badc0-n1`;
    const live = `${PREFIX}-${process.ppid}-11fe00-n1`; // owned by the (running) vitest process
    ip('netns', 'add', crashed);
    ip('netns', 'add', live);
    try {
      const orphan = spawn(which('nsenter')!, [`--net=/run/netns/${crashed}`, 'sleep', '600'], { stdio: 'ignore', detached: true });
      orphan.unref();
      expect(await until(() => ip('netns', 'pids', crashed).trim() !== '', 5000)).toBe(true);
      const removed = cleanLeftovers();
      expect(removed).toContain(crashed);
      expect(removed).not.toContain(live);
      expect(namespaces()).not.toContain(crashed);
      expect(namespaces()).toContain(live);
      expect(await until(() => !isRunning(orphan.pid!), 2000)).toBe(true);
    } finally {
      for (const n of [crashed, live]) if (namespaces().includes(n)) ip('netns', 'del', n);
    }
  });
});

const slurmSkip = skipReason('the Slurm cluster', slurm);
describe.skipIf(slurmSkip !== '')(`a Slurm cluster on the two nodes${slurmSkip ? ` (skipped: ${slurmSkip})` : ''}`, () => {
  let cluster: SlurmCluster;
  beforeAll(async () => {
    cluster = await slurmCluster();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('has both nodes idle, at their veth addresses', async () => {
    const r = await cluster.run('scontrol', ['show', 'nodes']);
    expect(r.code, r.stderr).toBe(0);
    for (const n of cluster.pair.nodes) {
      const block = r.stdout.split(/\n(?=NodeName=)/).find((b) => b.startsWith(`NodeName=${n.name} `));
      expect(block, r.stdout).toMatch(new RegExp(`NodeAddr=${n.addr.replace(/\./g, '\\.')} `));
      expect(block).toMatch(/State=IDLE /);
    }
  });

  it('srun -N2 -n2 runs one task on each node, rank 0 on n1 and rank 1 on n2', async () => {
    const task = `const e = process.env; console.log(JSON.stringify({ procid: e.SLURM_PROCID, nodeid: e.SLURM_NODEID, ntasks: e.SLURM_NTASKS, nodelist: e.SLURM_JOB_NODELIST, host: require('node:os').hostname() }))`;
    const r = await cluster.run('srun', ['-N2', '-n2', process.execPath, '-e', task], { timeoutMs: 30_000 });
    expect(r.code, `${r.stderr}\n${cluster.logs()}`).toBe(0);
    const tasks = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).sort((a, b) => a.procid - b.procid);
    expect(tasks).toEqual([
      { procid: '0', nodeid: '0', ntasks: '2', nodelist: 'n[1-2]', host: 'n1' },
      { procid: '1', nodeid: '1', ntasks: '2', nodelist: 'n[1-2]', host: 'n2' },
    ]);
  });

  // About 2 s: slurmctld starts a submitted batch job on its next scheduling pass, not at once.
  it('sbatch runs a batch script whose srun spans both nodes', async () => {
    const script = join(cluster.dir, 'job.sh');
    const out = join(cluster.dir, 'job.out');
    writeFileSync(script, `#!/bin/sh\n#SBATCH -N2 -n2\necho batch on $(hostname)\nsrun sh -c 'echo task $SLURM_PROCID on $(hostname)' | sort\n`, { mode: 0o755 });
    const r = await cluster.run('sbatch', ['--parsable', '-o', out, script], { timeoutMs: 30_000 });
    expect(r.code, `${r.stdout}${r.stderr}\n${cluster.logs()}`).toBe(0);
    const jobId = r.stdout.trim().split(';')[0];
    expect(jobId).toMatch(/^\d+$/);
    expect(await cluster.waitForJob(jobId)).toEqual({ state: 'COMPLETED', exitCode: '0:0' });
    expect(readFileSync(out, 'utf8').trim().split('\n')).toEqual(['batch on n1', 'task 0 on n1', 'task 1 on n2']);
  });

  it('close() stops every daemon and leaves no process behind', async () => {
    const pids = cluster.pair.pids();
    const comms = pids.map((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim()).sort();
    expect(comms).toEqual(expect.arrayContaining(['munged', 'slurmctld', 'slurmd', 'slurmd']));
    await cluster.close();
    expect(pids.filter(isRunning)).toEqual([]);
    expect(cluster.pair.closed).toBe(true);
    expect(namespaces().filter((n) => n.startsWith(cluster.pair.id))).toEqual([]);
    // Nothing anywhere still runs with this cluster's slurm.conf or munge socket.
    const users = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p) && isRunning(+p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(cluster.dir);
        } catch {
          return false;
        }
      });
    expect(users).toEqual([]);
  });
});

// One JSON line per rank, from the variables each launcher sets (notes/cluster.md's table).
const RANK = `const e = process.env; console.log(JSON.stringify({ rank: +(e.OMPI_COMM_WORLD_RANK ?? e.PMI_RANK), size: +(e.OMPI_COMM_WORLD_SIZE ?? e.PMI_SIZE), host: require('node:os').hostname() }))`;
const mpiSkip = skipReason('the MPI launches', ns);
describe.skipIf(mpiSkip !== '')(`MPI launchers across the two nodes${mpiSkip ? ` (skipped: ${mpiSkip})` : ''}`, () => {
  let pair: TwoNodes;
  beforeAll(async () => {
    pair = await twoNodes();
  });
  afterAll(async () => {
    await pair?.close();
  });
  const ranks = async (l: Launch) => {
    const r = await pair.run('n1', l.cmd, l.args, { env: { ...process.env, ...l.env }, timeoutMs: 30_000 });
    expect(r.code, `${l.cmd} ${l.args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
    return r.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
      .sort((a, b) => a.rank - b.rank);
  };
  const expected = [
    { rank: 0, size: 2, host: 'n1' },
    { rank: 1, size: 2, host: 'n2' },
  ];

  const ompiSkip = skipReason('Open MPI', openMpi);
  it.skipIf(ompiSkip !== '')(`Open MPI: mpirun -np 2 puts rank 0 on n1 and rank 1 on n2${ompiSkip ? ` (skipped: ${ompiSkip})` : ''}`, async () => {
    expect(await ranks(openMpiLaunch(pair, process.execPath, ['-e', RANK]))).toEqual(expected);
  });

  const mpichSkip = skipReason('MPICH', mpich);
  it.skipIf(mpichSkip !== '')(`MPICH Hydra: mpiexec -n 2 puts rank 0 on n1 and rank 1 on n2${mpichSkip ? ` (skipped: ${mpichSkip})` : ''}`, async () => {
    expect(await ranks(hydraLaunch(pair, process.execPath, ['-e', RANK]))).toEqual(expected);
  });
});
