#!/usr/bin/env node
// slfer-dist across two "machines" on this one: two network namespaces joined by a veth
// (scripts/lib/two-nodes.mjs), one rank or worker in each. Two measurements, in one run:
//
//  (a) all-reduce of one float32 buffer (default: the SLFER gradient, 13,721,871 floats = 54.9 MB)
//      over the veth: our ring (scripts/bench-two-nodes-rank.mjs, one rank per node, started as
//      launch starts its workers) against PyTorch's Gloo (scripts/peers/gloo_allreduce.py, one rank
//      per node), the same size, warm-up (2) and repetitions, both timed as total / reps after a
//      barrier. The two are interleaved (ours, Gloo, ours, Gloo...) and the medians compared.
//  (b) training throughput: `launch --nnodes 2 --nproc-per-node 1 --insecure` (one worker a node)
//      against `launch --workers 1` (one node, one worker), the same config and per-worker batch;
//      the figure is the last epoch's img/s from metrics.jsonl. A control, `launch --workers 2` on
//      one node (the same two cores, no veth), tells the network's cost from the cores'. Interleaved
//      too, medians compared.
//
// The namespaces share this machine's cores: with --pin (default) each node gets its own core
// (taskset: n1 core 0, n2 core 1; the one-node run with 1 worker core 0, with 2 cores 0-1) and
// one engine thread a worker, which is what two one-core machines would be. Without it the
// processes compete for all cores (meaningless for (b)).
//
//   node scripts/bench-two-nodes.mjs [--out runs/bench-two-nodes.json] [--rounds 3] [--train-rounds 2]
//        [--numel 13721871] [--reps 10] [--train 128] [--test 32] [--size 128] [--epochs 2]
//        [--batch 16] [--width 1] [--no-pin] [--skip-allreduce] [--skip-train]
//
// Needs root (namespaces), the project built (npx tsc -p tsconfig.json) and, for Gloo, PyTorch in
// /usr/bin/python3 (Debian's python3-torch; --python to change).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuModel } from './lib/cpu-model.mjs';
import { IFNAME, namespacesAvailable, twoNodes } from './lib/two-nodes.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'slfer-dist.js');
const RANK_SCRIPT = join(ROOT, 'scripts', 'bench-two-nodes-rank.mjs');
const GLOO_SCRIPT = join(ROOT, 'scripts', 'peers', 'gloo_allreduce.py');

const { values: o } = parseArgs({
  options: {
    out: { type: 'string', default: 'runs/bench-two-nodes.json' },
    rounds: { type: 'string', default: '3' },
    'train-rounds': { type: 'string', default: '2' },
    numel: { type: 'string', default: '13721871' },
    reps: { type: 'string', default: '10' },
    python: { type: 'string', default: '/usr/bin/python3' },
    train: { type: 'string', default: '128' },
    test: { type: 'string', default: '32' },
    size: { type: 'string', default: '128' },
    epochs: { type: 'string', default: '2' },
    batch: { type: 'string', default: '16' },
    width: { type: 'string', default: '1' },
    pin: { type: 'boolean', default: true },
    'no-pin': { type: 'boolean', default: false },
    'skip-allreduce': { type: 'boolean', default: false },
    'skip-train': { type: 'boolean', default: false },
    'timeout-s': { type: 'string', default: '900' },
  },
});
const pin = o.pin && !o['no-pin'];
const timeoutMs = Number(o['timeout-s']) * 1000;
const num = (k) => {
  const n = Number(o[k]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`bench-two-nodes: --${k} must be a whole number >= 1, got ${JSON.stringify(o[k])}`);
    process.exit(2);
  }
  return n;
};
const rounds = num('rounds');
const trainRounds = num('train-rounds');
const numel = num('numel');
const reps = num('reps');

const avail = namespacesAvailable();
if (!avail.ok) {
  console.error(`bench-two-nodes: cannot make two nodes here: ${avail.reason}`);
  process.exit(2);
}
if (!existsSync(join(ROOT, 'dist', 'cluster', 'collective', 'ring.js'))) {
  console.error('bench-two-nodes: the project is not built: run `npx tsc -p tsconfig.json` first');
  process.exit(2);
}
const { RING_EXEC_ARGV, ringProcessEnv } = await import(join(ROOT, 'dist', 'cluster', 'collective', 'process-setup.js'));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round3 = (x) => +x.toFixed(3);
// The environment of every process: nothing of a launcher this script may itself run under.
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(SLFER_|SLURM_|OMPI_|PMI_|PMIX_|TORCHELASTIC_|MASTER_|RANK$|WORLD_SIZE$|LOCAL_RANK$|GLOO_)/.test(k)));

const pair = await twoNodes();
const work = mkdtempSync(join(tmpdir(), 'slfer-bench-two-nodes-'));
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    pair.closeSync();
    rmSync(work, { recursive: true, force: true });
    process.exit(130);
  });
const [n1, n2] = pair.nodes;
/** `cmd args` on a node, pinned to its own core when --pin. */
const onNode = (node, cmd, args, env, core = node.index) => pair.run(node, pin ? 'taskset' : cmd, pin ? ['-c', String(core), cmd, ...args] : args, { env, timeoutMs });
const failed = (what, r) => new Error(`bench-two-nodes: ${what} ${r.timedOut ? `timed out after ${o['timeout-s']} s` : `exited with ${r.code ?? r.signal}`}:\n${(r.stdout + r.stderr).trim().split('\n').slice(-30).join('\n')}`);

let port = 29_700;
async function oursOnce() {
  const p = ++port;
  const env = (n) => ringProcessEnv({ ...baseEnv, RANK: String(n.index), WORLD_SIZE: '2', MASTER_ADDR: n1.addr, MASTER_PORT: String(p), ADVERTISE_ADDR: n.addr });
  const args = [...RING_EXEC_ARGV, RANK_SCRIPT, String(numel), String(reps), '2'];
  const rs = await Promise.all(pair.nodes.map((n) => onNode(n, process.execPath, args, env(n))));
  rs.forEach((r, i) => {
    if (r.code !== 0) throw failed(`our rank ${i}`, r);
  });
  return JSON.parse(rs[0].stdout.trim().split('\n').at(-1));
}
// "gloo world=2 bytes=54887484: 62.0 ms/allreduce, algBw 0.89 GB/s, busBw 0.89 GB/s"
async function glooOnce() {
  const p = ++port;
  const env = (n) => ({ ...baseEnv, RANK: String(n.index), WORLD_SIZE: '2', MASTER_ADDR: n1.addr, MASTER_PORT: String(p), GLOO_SOCKET_IFNAME: IFNAME });
  const rs = await Promise.all(pair.nodes.map((n) => onNode(n, o.python, [GLOO_SCRIPT, '2', String(numel), String(reps)], env(n))));
  rs.forEach((r, i) => {
    if (r.code !== 0) throw failed(`Gloo rank ${i}`, r);
  });
  const line = rs[0].stdout.trim();
  const m = /world=(\d+) bytes=(\d+): ([\d.]+) ms\/allreduce, algBw ([\d.]+) GB\/s, busBw ([\d.]+) GB\/s/.exec(line);
  if (!m) throw new Error(`bench-two-nodes: unexpected output from ${GLOO_SCRIPT}: ${JSON.stringify(line)}`);
  return { world: +m[1], bytes: +m[2], msPerAllreduce: +m[3], algBwGBs: +m[4], busBwGBs: +m[5] };
}

/** The last epoch's img/s (global) of a run folder. */
const lastEpoch = (runDir) => JSON.parse(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').at(-1));
let runs = 0;
async function oneNode(config) {
  const out = join(work, `one-${++runs}`);
  const r = await onNode(n1, process.execPath, [BIN, 'launch', '--workers', '1', '--config', config, '--out', out], { ...baseEnv, ...(pin ? { OMP_NUM_THREADS: '1' } : {}) }, 0);
  if (r.code !== 0) throw failed('launch --workers 1', r);
  return lastEpoch(out);
}
/** The control: both workers on one node (both cores, loopback between them), as `launch` runs on one machine. */
async function oneNodeTwoWorkers(config) {
  const out = join(work, `local2-${++runs}`);
  const r = await onNode(n1, process.execPath, [BIN, 'launch', '--workers', '2', '--config', config, '--out', out], { ...baseEnv, ...(pin ? { OMP_NUM_THREADS: '1' } : {}) }, '0,1');
  if (r.code !== 0) throw failed('launch --workers 2', r);
  return lastEpoch(out);
}
async function twoNodesRun(config) {
  const p = ++port;
  const out = join(work, `two-${++runs}`);
  const args = (n) => [BIN, 'launch', '--nnodes', '2', '--node-rank', String(n.index), '--nproc-per-node', '1', '--rdzv-endpoint', `${n1.addr}:${p}`, '--insecure', '--config', config, '--out', `${out}-node${n.index}`];
  const env = { ...baseEnv, ...(pin ? { OMP_NUM_THREADS: '1' } : {}) };
  const rs = await Promise.all(pair.nodes.map((n) => onNode(n, process.execPath, args(n), env)));
  rs.forEach((r, i) => {
    if (r.code !== 0) throw failed(`launch --nnodes 2 on node ${i}`, r);
  });
  if (!/launched 2 workers on 2 machines/.test(rs[0].stdout + rs[0].stderr)) throw new Error(`bench-two-nodes: the 2-node run did not say it ran on 2 machines:\n${rs[0].stderr}`);
  return lastEpoch(`${out}-node0`);
}

let exit = 0;
const result = {
  cpu: cpuModel(),
  cores: cpus().length,
  node: process.version,
  pinned: pin ? 'n1 on core 0, n2 on core 1 (taskset); one node: 1 worker on core 0, 2 workers on cores 0-1; OMP_NUM_THREADS=1 a worker' : 'not pinned',
  transport: `veth between two network namespaces (${n1.addr} <-> ${n2.addr})`,
  startedAt: new Date().toISOString(),
};
try {
  if (!o['skip-allreduce']) {
    const ours = [];
    const gloo = [];
    for (let i = 0; i < rounds; i++) {
      ours.push(await oursOnce());
      console.error(`all-reduce round ${i + 1}/${rounds}: ours ${ours.at(-1).msPerAllreduce} ms`);
      gloo.push(await glooOnce());
      console.error(`all-reduce round ${i + 1}/${rounds}: Gloo ${gloo.at(-1).msPerAllreduce} ms`);
    }
    const oursMs = median(ours.map((x) => x.msPerAllreduce));
    const glooMs = median(gloo.map((x) => x.msPerAllreduce));
    const bytes = numel * 4;
    result.allreduce = {
      bytes,
      elements: numel,
      reps,
      warmup: 2,
      rounds,
      order: 'interleaved: ours, Gloo, ours, Gloo, ...',
      ours: { what: 'slfer-dist Ring over ZeroMQ tcp (scripts/bench-two-nodes-rank.mjs)', msPerAllreduceMedian: oursMs, busBwGBsMedian: round3(bytes / (oursMs / 1000) / 1e9), runs: ours },
      gloo: { what: 'PyTorch torch.distributed Gloo all_reduce (scripts/peers/gloo_allreduce.py)', msPerAllreduceMedian: glooMs, busBwGBsMedian: round3(bytes / (glooMs / 1000) / 1e9), runs: gloo },
      glooOverOurs: round3(glooMs / oursMs),
    };
  }
  if (!o['skip-train']) {
    const data = join(work, 'data');
    const size = num('size');
    const t0 = Date.now();
    const synth = spawnSync(process.execPath, [BIN, 'data', 'synth', '--out', data, '--train', o.train, '--test', o.test, '--size', String(size)], { encoding: 'utf8', env: baseEnv, timeout: timeoutMs });
    if (synth.status !== 0) throw new Error(`bench-two-nodes: synth failed:\n${synth.stdout}${synth.stderr}`);
    console.error(`synthetic data: ${o.train} train / ${o.test} test at ${size}px in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    const config = join(work, 'config.json');
    const cfg = {
      data: { dataset: 'rafdb', root: data, resize: size, threads: 1 },
      model: { variant: 'proposed', width: Number(o.width), inputSize: size },
      loss: { lambdaSeg: 0.5, lambdaCls: 0.5, topN: 4 },
      train: { epochs: num('epochs'), batchSize: num('batch'), lr: 0.0001, beta1: 0.5, beta2: 0.999, milestones: [10], gamma: 0.1, seed: 0 },
      engine: { backend: 'wasm' },
    };
    writeFileSync(config, JSON.stringify(cfg, null, 1));
    const one = [];
    const two = [];
    const local2 = [];
    for (let i = 0; i < trainRounds; i++) {
      one.push(await oneNode(config));
      console.error(`training round ${i + 1}/${trainRounds}: 1 node x 1 worker ${one.at(-1).imagesPerSec.toFixed(2)} img/s`);
      two.push(await twoNodesRun(config));
      console.error(`training round ${i + 1}/${trainRounds}: 2 nodes x 1 worker ${two.at(-1).imagesPerSec.toFixed(2)} img/s`);
      local2.push(await oneNodeTwoWorkers(config));
      console.error(`training round ${i + 1}/${trainRounds}: 1 node x 2 workers ${local2.at(-1).imagesPerSec.toFixed(2)} img/s`);
    }
    const oneIps = median(one.map((m) => m.imagesPerSec));
    const twoIps = median(two.map((m) => m.imagesPerSec));
    const local2Ips = median(local2.map((m) => m.imagesPerSec));
    const pick = (m) => ({ epoch: m.epoch, imagesPerSec: round3(m.imagesPerSec), computeSeconds: m.computeSeconds, allReduceSeconds: m.allReduceSeconds, dataWaitSeconds: m.dataWaitSeconds });
    result.training = {
      config: cfg,
      images: { train: Number(o.train), test: Number(o.test) },
      rounds: trainRounds,
      order: 'interleaved: 1 node x 1, 2 nodes x 1, 1 node x 2, 1 node x 1, ...',
      figure: "last epoch's imagesPerSec (global) from metrics.jsonl",
      oneNode: { what: 'launch --workers 1', imagesPerSecMedian: round3(oneIps), runs: one.map(pick) },
      twoNodes: { what: 'launch --nnodes 2 --nproc-per-node 1 --insecure (one worker a node)', imagesPerSecMedian: round3(twoIps), runs: two.map(pick) },
      // The control: the same two workers on the same two cores, without the veth between them.
      oneNodeTwoWorkers: { what: `launch --workers 2 on one node${pin ? ' (taskset -c 0,1)' : ''}`, imagesPerSecMedian: round3(local2Ips), runs: local2.map(pick) },
      speedup: round3(twoIps / oneIps),
      efficiency: round3(twoIps / (2 * oneIps)),
      twoNodesOverOneNodeTwoWorkers: round3(twoIps / local2Ips),
    };
  }
  result.endedAt = new Date().toISOString();
  const out = resolve(o.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');

  const rows = [`CPU: ${result.cpu} (${result.cores} cores); ${result.pinned}`];
  if (result.allreduce) {
    const a = result.allreduce;
    rows.push(
      `all-reduce of ${(a.bytes / 1e6).toFixed(1)} MB across the veth, ${a.reps} reps after ${a.warmup} warm-ups, median of ${a.rounds} interleaved runs:`,
      `  ours  ${a.ours.msPerAllreduceMedian.toFixed(1).padStart(7)} ms  busBw ${a.ours.busBwGBsMedian.toFixed(2)} GB/s   runs: ${a.ours.runs.map((x) => x.msPerAllreduce).join(', ')}`,
      `  Gloo  ${a.gloo.msPerAllreduceMedian.toFixed(1).padStart(7)} ms  busBw ${a.gloo.busBwGBsMedian.toFixed(2)} GB/s   runs: ${a.gloo.runs.map((x) => x.msPerAllreduce).join(', ')}`,
      `  Gloo time / ours: ${a.glooOverOurs.toFixed(2)}`,
    );
  }
  if (result.training) {
    const t = result.training;
    rows.push(
      `training, ${t.config.model.inputSize}px, width ${t.config.model.width}, batch ${t.config.train.batchSize} per worker, ${t.images.train} train images, last of ${t.config.train.epochs} epochs, median of ${t.rounds} interleaved runs:`,
      `  1 node  x 1 worker  ${t.oneNode.imagesPerSecMedian.toFixed(2).padStart(7)} img/s   runs: ${t.oneNode.runs.map((x) => x.imagesPerSec).join(', ')}`,
      `  2 nodes x 1 worker  ${t.twoNodes.imagesPerSecMedian.toFixed(2).padStart(7)} img/s   runs: ${t.twoNodes.runs.map((x) => x.imagesPerSec).join(', ')}`,
      `  1 node  x 2 workers ${t.oneNodeTwoWorkers.imagesPerSecMedian.toFixed(2).padStart(7)} img/s   runs: ${t.oneNodeTwoWorkers.runs.map((x) => x.imagesPerSec).join(', ')}   (control: the same cores, no veth)`,
      `  2 nodes over 1 node x 1: ${t.speedup.toFixed(2)}x (scaling efficiency ${(t.efficiency * 100).toFixed(0)}%); 2 nodes over 1 node x 2: ${t.twoNodesOverOneNodeTwoWorkers.toFixed(2)}x`,
    );
  }
  rows.push(`wrote ${out}`);
  console.log(rows.join('\n'));
} catch (e) {
  console.error(e.message);
  exit = 1;
} finally {
  await pair.close();
  rmSync(work, { recursive: true, force: true });
}
process.exit(exit);
