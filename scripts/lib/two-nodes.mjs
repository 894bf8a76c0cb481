// Two "nodes" on one machine: two network namespaces joined by one veth pair that reaches nothing
// else (no host interface, no route out, no default gateway), so that real daemons and launchers
// see two hosts with their own addresses, hostnames and /etc/hosts. Needs root.
//
// Plain ESM so that both the tests (test/helpers/netns.ts) and benchmark scripts
// (scripts/bench-netns-gloo.mjs) use the same code; types are in two-nodes.d.mts.
//
// Processes are started with `nsenter --net=/run/netns/X`, not `ip netns exec`: the latter also
// remounts /sys, which breaks slurmd's cgroup setup. A node identity (its own hostname and an
// /etc/hosts naming both nodes) adds `unshare --uts --mount`, whose mount namespace is private, so
// the bind mount over /etc/hosts never reaches the host.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** Every namespace and temp folder made here is named `<prefix>-<owner pid>-<random>[-<node>]`. */
export const PREFIX = 'slfer2n';
/** The veth end's name, the same inside both namespaces (handy for *_if_include options). */
export const IFNAME = 'veth0';
const NETNS_DIR = '/run/netns';

// Runs after `unshare --uts --mount`: $1 the hostname, $2 the hosts file, then the command.
const IDENTITY_SCRIPT =
  'hostname "$1" && mount --bind "$2" /etc/hosts || { echo "two-nodes: could not give this process the identity of node $1" >&2; exit 125; }; shift 2; exec "$@"';

/** Absolute path of a program on PATH or in the sbin folders (root's tools may be outside a CI PATH). */
export function which(bin) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) if (d && existsSync(join(d, bin))) return join(d, bin);
  return null;
}

/** Whether the process runs: a zombie (exited, not yet reaped by its parent) does not. */
export function isRunning(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const tool = (bin) => {
  const p = which(bin);
  if (!p) throw new Error(`two-nodes: ${bin} not found (apt-get install iproute2 util-linux)`);
  return p;
};

/** Runs `ip ...`; an error names the command and carries ip's own message. */
function ip(args) {
  try {
    return execFileSync(tool('ip'), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const stderr = (e.stderr ?? '').toString().trim();
    throw new Error(`two-nodes: \`ip ${args.join(' ')}\` failed: ${stderr || e.message}`);
  }
}

const listNamespaces = () => (existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR) : []);

/** Ids of the processes whose network namespace is `ns` (zombies have none, so are not listed). */
function nsPids(ns) {
  if (!listNamespaces().includes(ns)) return [];
  try {
    return ip(['netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const kill = (pid, signal) => {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let probed;
/**
 * Whether two nodes can be made here: root, ip/nsenter/unshare present, and a namespace with a veth
 * pair, nsenter and unshare --uts --mount all work (a container without CAP_SYS_ADMIN fails here).
 */
export function namespacesAvailable() {
  return (probed ??= probe());
}

function probe() {
  if (process.platform !== 'linux') return { ok: false, reason: 'network namespaces need Linux' };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'not root (network namespaces need root; CI runs as root)' };
  for (const bin of ['ip', 'nsenter', 'unshare', 'hostname', 'mount'])
    if (!which(bin)) return { ok: false, reason: `${bin} not found (apt-get install iproute2 util-linux)` };
  const ns = `${PREFIX}-${process.pid}-probe${randomBytes(2).toString('hex')}`;
  try {
    ip(['netns', 'add', ns]);
  } catch (e) {
    return { ok: false, reason: `cannot create a network namespace: ${e.message}` };
  }
  try {
    ip(['-n', ns, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1']);
    execFileSync(tool('nsenter'), [`--net=${NETNS_DIR}/${ns}`, '--', tool('unshare'), '--uts', '--mount', '--', 'true'], { stdio: 'pipe' });
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: `a veth pair, nsenter or unshare --uts --mount does not work here: ${(e.stderr ?? '').toString().trim() || e.message}` };
  } finally {
    try {
      ip(['netns', 'del', ns]);
    } catch {
      /* reported by the next run's cleanLeftovers */
    }
  }
}

/**
 * Removes what crashed runs left behind: namespaces (and the processes in them) and temp folders
 * named `<prefix>-<pid>-...` whose owner process no longer exists. Another live run's are kept, so
 * parallel runs do not tear each other down (a reused pid only delays the cleanup). Returns the
 * namespaces removed.
 */
export function cleanLeftovers({ prefix = PREFIX } = {}) {
  const owned = new RegExp(`^${prefix.replace(/[^\w-]/g, '\\$&')}-(\\d+)-`);
  const orphaned = (name) => {
    const m = owned.exec(name);
    return m !== null && Number(m[1]) !== process.pid && !isRunning(Number(m[1]));
  };
  const removed = [];
  for (const ns of listNamespaces().filter(orphaned)) {
    for (const pid of nsPids(ns)) kill(pid, 'SIGKILL');
    try {
      ip(['netns', 'del', ns]);
      removed.push(ns);
    } catch {
      /* raced with another cleaner */
    }
  }
  for (const d of readdirSync(tmpdir()).filter(orphaned)) rmSync(join(tmpdir(), d), { recursive: true, force: true });
  return removed;
}

const open = new Set();
let exitHook = false;
// Last resort when a test or script dies without close(): SIGKILL and delete synchronously (an
// 'exit' handler cannot wait). A SIGKILLed owner leaves the namespaces to cleanLeftovers.
const closeAllSync = () => {
  for (const pair of open) pair.closeSync();
};

let counter = 0;
const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/**
 * Makes two namespaces joined by one veth pair, addresses 10.77.<subnet>.1/24 and .2/24, loopback up
 * in each, and a hosts file mapping both names to their addresses.
 */
export async function twoNodes({ names = ['n1', 'n2'], subnet, prefix = PREFIX } = {}) {
  const avail = namespacesAvailable();
  if (!avail.ok) throw new Error(`twoNodes: ${avail.reason}`);
  if (names.length !== 2 || names[0] === names[1] || !names.every((n) => /^[a-z][a-z0-9-]{0,30}$/.test(n)))
    throw new Error(`twoNodes: names must be two different hostnames (lower-case letters, digits, '-'), got ${JSON.stringify(names)}`);
  // The namespaces see only each other, so the same subnet in two pairs cannot collide; it differs
  // by owner anyway so that logs of parallel runs are told apart.
  const third = subnet ?? 1 + ((process.pid + counter++) % 254);
  if (!Number.isInteger(third) || third < 1 || third > 254) throw new Error(`twoNodes: subnet must be 1..254 (10.77.<subnet>.0/24), got ${subnet}`);
  cleanLeftovers({ prefix });

  const id = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), `${id}-`));
  chmodSync(dir, 0o755); // daemons started from it (munged) check their folders' modes
  const nodes = names.map((name, index) => ({ name, index, ns: `${id}-${name}`, addr: `10.77.${third}.${index + 1}`, hostsFile: join(dir, `hosts-${name}`), ifname: IFNAME }));
  const hosts = ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback', ...nodes.map((n) => `${n.addr} ${n.name}`), ''].join('\n');
  for (const n of nodes) writeFileSync(n.hostsFile, hosts, { mode: 0o644 });

  const nsenter = tool('nsenter');
  const unshare = tool('unshare');
  let closing = null;
  let agent = null;

  const node = (ref) => {
    const n = typeof ref === 'string' ? nodes.find((x) => x.name === ref) : nodes.find((x) => x === ref || x.ns === ref?.ns);
    if (!n) throw new Error(`twoNodes: no node ${JSON.stringify(typeof ref === 'string' ? ref : ref?.name)} (nodes: ${names.join(', ')})`);
    return n;
  };
  const prefixArgs = (n, identity) => [`--net=${NETNS_DIR}/${n.ns}`, '--', ...(identity ? [unshare, '--uts', '--mount', '--', 'sh', '-c', IDENTITY_SCRIPT, 'sh', n.name, n.hostsFile] : [])];
  const pids = () => nodes.flatMap((n) => nsPids(n.ns));

  const pair = {
    id,
    dir,
    subnet: `10.77.${third}.0/24`,
    nodes,
    node,
    get closed() {
      return closing !== null;
    },
    command(ref, cmd, args = [], { identity = true } = {}) {
      return { file: nsenter, args: [...prefixArgs(node(ref), identity), cmd, ...args] };
    },
    exec(ref, cmd, args = [], opts = {}) {
      if (closing) throw new Error(`twoNodes: exec ${cmd} on ${id} after close()`);
      const { identity = true, ...spawnOpts } = opts;
      const c = pair.command(ref, cmd, args, { identity });
      return spawn(c.file, c.args, spawnOpts);
    },
    run(ref, cmd, args = [], opts = {}) {
      const { timeoutMs = 60_000, input, ...execOpts } = opts;
      return new Promise((resolve, reject) => {
        const child = pair.exec(ref, cmd, args, { ...execOpts, stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, timeoutMs);
        child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
        child.on('error', (e) => {
          clearTimeout(timer);
          reject(new Error(`twoNodes: could not start ${cmd} on ${node(ref).name}: ${e.message}`));
        });
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          resolve({ code, signal, stdout, stderr, timedOut });
        });
        child.stdin.on('error', () => {}); // a program that exits without reading its input
        child.stdin.end(input ?? '');
      });
    },
    /** Like a pulled cable: the node's own sends fail at once (ENETUNREACH), the other's get no answer. */
    linkDown(ref) {
      ip(['-n', node(ref).ns, 'link', 'set', IFNAME, 'down']);
    },
    linkUp(ref) {
      ip(['-n', node(ref).ns, 'link', 'set', IFNAME, 'up']);
      // An address looked up while the link was down stays FAILED in the neighbour (ARP) cache for
      // a while, so new connections would fail with EHOSTUNREACH after the link is back: forget it.
      for (const n of nodes)
        try {
          ip(['-n', n.ns, 'neigh', 'flush', 'dev', IFNAME]);
        } catch {
          /* nothing cached */
        }
    },
    pids,
    /**
     * An ssh stand-in for launchers (Open MPI's plm_rsh_agent, Hydra's -launcher-exec):
     * `<agent> [-x ...] <node name or address> <command...>` runs the command, joined into one
     * string as ssh does, with `sh -c` in that node's namespace with its identity.
     */
    sshAgent() {
      if (agent) return agent;
      agent = join(dir, 'ssh-to-node');
      const cases = nodes.map((n) => `  ${n.name}|${n.addr}) ns=${shq(n.ns)}; name=${shq(n.name)}; hosts=${shq(n.hostsFile)};;`).join('\n');
      writeFileSync(
        agent,
        `#!/bin/sh
# ssh stand-in for the two nodes of ${id}: [ssh options] host command...
# Hydra passes -x (no X11 forwarding); ssh options with a value are skipped with their value.
while [ $# -gt 0 ]; do
  case "$1" in
    -o|-p|-l|-i) shift 2;;
    -*) shift;;
    *) break;;
  esac
done
[ $# -ge 2 ] || { echo "ssh-to-node: usage: ssh-to-node [options] host command..." >&2; exit 255; }
host=$1; shift
case "$host" in
${cases}
  *) echo "ssh-to-node: no node named $host (nodes: ${names.join(' ')})" >&2; exit 255;;
esac
exec ${shq(nsenter)} --net=${NETNS_DIR}/"$ns" -- ${shq(unshare)} --uts --mount -- sh -c ${shq(IDENTITY_SCRIPT)} sh "$name" "$hosts" sh -c "$*"
`,
        { mode: 0o755 },
      );
      return agent;
    },
    /** SIGTERM everything in the namespaces, SIGKILL what is left after graceMs, delete them. Idempotent. */
    close({ graceMs = 2000 } = {}) {
      closing ??= (async () => {
        const problems = [];
        let left = pids();
        for (const pid of left) kill(pid, 'SIGTERM');
        for (let t = 0; left.length && t < graceMs; t += 50) {
          await sleep(50);
          left = pids();
        }
        for (const pid of left) kill(pid, 'SIGKILL');
        for (let i = 0; left.length && i < 100; i++) {
          await sleep(50);
          left = pids();
        }
        if (left.length) problems.push(`processes ${left.join(', ')} survived SIGKILL`);
        teardown(problems);
        open.delete(pair);
        if (problems.length) throw new Error(`twoNodes close(${id}): ${problems.join('; ')}`);
      })();
      return closing;
    },
    closeSync() {
      for (const pid of pids()) kill(pid, 'SIGKILL');
      closing ??= Promise.resolve();
      teardown([]);
      open.delete(pair);
    },
  };

  function teardown(problems) {
    for (const n of nodes)
      if (listNamespaces().includes(n.ns))
        try {
          ip(['netns', 'del', n.ns]);
        } catch (e) {
          problems.push(e.message);
        }
    rmSync(dir, { recursive: true, force: true });
  }

  open.add(pair);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', closeAllSync);
  }
  try {
    for (const n of nodes) ip(['netns', 'add', n.ns]);
    // Both ends are created directly inside the namespaces: the host never has the interface.
    ip(['link', 'add', IFNAME, 'netns', nodes[0].ns, 'type', 'veth', 'peer', 'name', IFNAME, 'netns', nodes[1].ns]);
    for (const n of nodes) {
      ip(['-n', n.ns, 'addr', 'add', `${n.addr}/24`, 'dev', IFNAME]);
      ip(['-n', n.ns, 'link', 'set', IFNAME, 'up']);
      ip(['-n', n.ns, 'link', 'set', 'lo', 'up']);
    }
  } catch (e) {
    pair.closeSync();
    throw e;
  }
  return pair;
}
