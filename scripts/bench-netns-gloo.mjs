#!/usr/bin/env node
// PyTorch Gloo all-reduce between two "nodes" on this machine: rank 0 in one network namespace,
// rank 1 in the other, talking over the veth that joins them (scripts/lib/two-nodes.mjs), instead
// of loopback inside one namespace. Prints one JSON object. Needs root and PyTorch in /usr/bin/python3
// (Debian's python3-torch).
//
//   node scripts/bench-netns-gloo.mjs [--numel 13721871] [--reps 10] [--loopback]
//
// --numel defaults to the SLFER model's parameter count (a 54.9 MB float32 gradient); --loopback
// also measures the same all-reduce with both ranks on loopback in the host namespace, in the same
// run, for a ratio on a noisy shared machine.
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuModel } from './lib/cpu-model.mjs';
import { IFNAME, namespacesAvailable, twoNodes } from './lib/two-nodes.mjs';

const { values: o } = parseArgs({
  options: {
    numel: { type: 'string', default: '13721871' },
    reps: { type: 'string', default: '10' },
    python: { type: 'string', default: '/usr/bin/python3' },
    port: { type: 'string', default: '29517' },
    loopback: { type: 'boolean', default: false },
    'timeout-s': { type: 'string', default: '300' },
  },
});
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'peers', 'gloo_allreduce.py');
const timeoutMs = Number(o['timeout-s']) * 1000;

// "gloo world=2 bytes=54887484: 62.0 ms/allreduce, algBw 0.89 GB/s, busBw 0.89 GB/s"
function parse(line) {
  const m = /world=(\d+) bytes=(\d+): ([\d.]+) ms\/allreduce, algBw ([\d.]+) GB\/s, busBw ([\d.]+) GB\/s/.exec(line);
  if (!m) throw new Error(`bench-netns-gloo: unexpected output from ${SCRIPT}: ${JSON.stringify(line)}`);
  return { world: +m[1], bytes: +m[2], msPerAllreduce: +m[3], algBwGBs: +m[4], busBwGBs: +m[5] };
}


const avail = namespacesAvailable();
if (!avail.ok) {
  console.error(`bench-netns-gloo: cannot make two nodes here: ${avail.reason}`);
  process.exit(2);
}

const pair = await twoNodes();
// Ctrl-C or a kill: take the namespaces (and both ranks) down before exiting.
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    pair.closeSync();
    process.exit(130);
  });

let exit = 0;
try {
  const [n1, n2] = pair.nodes;
  const args = [SCRIPT, '2', o.numel, o.reps];
  // Gloo finds its own address from GLOO_SOCKET_IFNAME; the rendezvous store is on rank 0's node.
  const env = (rank) => ({ ...process.env, RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: n1.addr, MASTER_PORT: o.port, GLOO_SOCKET_IFNAME: IFNAME });
  const [r0, r1] = await Promise.all([pair.run(n1, o.python, args, { env: env(0), timeoutMs }), pair.run(n2, o.python, args, { env: env(1), timeoutMs })]);
  for (const [rank, r] of [r0, r1].entries())
    if (r.code !== 0) throw new Error(`bench-netns-gloo: rank ${rank} ${r.timedOut ? `timed out after ${o['timeout-s']} s` : `exited with ${r.code ?? r.signal}`}:\n${r.stderr.trim()}`);
  const result = {
    peer: 'PyTorch torch.distributed Gloo all_reduce (scripts/peers/gloo_allreduce.py)',
    transport: `veth between two network namespaces (${n1.addr} <-> ${n2.addr})`,
    ...parse(r0.stdout.trim()),
    reps: +o.reps,
    cpu: cpuModel(),
    cores: cpus().length,
  };
  if (o.loopback) {
    // The same script's own mode: both ranks spawned on this machine's loopback.
    const { RANK: _rank, WORLD_SIZE: _world, MASTER_ADDR: _addr, ...hostEnv } = process.env;
    const lo = execFileSync(o.python, args, { encoding: 'utf8', timeout: timeoutMs, env: { ...hostEnv, MASTER_PORT: String(+o.port + 1) } });
    result.loopback = parse(lo.trim());
    result.vethOverLoopback = +(result.msPerAllreduce / result.loopback.msPerAllreduce).toFixed(3);
  }
  console.log(JSON.stringify(result, null, 2));
} catch (e) {
  console.error(e.message);
  exit = 1;
} finally {
  await pair.close();
}
process.exit(exit);
