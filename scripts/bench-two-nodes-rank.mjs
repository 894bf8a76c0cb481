#!/usr/bin/env node
// One rank of our ring all-reduce for scripts/bench-two-nodes.mjs, started once per machine (here:
// per network namespace) as scripts/peers/gloo_allreduce.py is with RANK set: the same buffer, the
// same warm-up and repetitions, the same timing (a barrier, then `reps` all-reduces back to back,
// each on the previous result; ms per all-reduce = total / reps), so the two compare directly.
//
//   RANK=r WORLD_SIZE=n MASTER_ADDR=host MASTER_PORT=p ADVERTISE_ADDR=this-node's-address \
//     node --expose-gc scripts/bench-two-nodes-rank.mjs NUMEL REPS [WARMUP]
//
// Rank 0 also hosts the rendezvous (as Gloo's rank 0 hosts its TCPStore) on 0.0.0.0:MASTER_PORT.
// Each rank binds its ring socket on 0.0.0.0 and advertises ADVERTISE_ADDR. Start it as launch
// starts its workers (--expose-gc, and GLIBC_TUNABLES from dist/cluster/collective/process-setup.js)
// or it measures a slower ring than the trainer's. Every result is checked element by element
// (warm-ups against the exact sum, the timed ones against the same doublings computed here); rank 0
// prints one JSON line. Needs the project built (npx tsc -p tsconfig.json).
import { rendezvous, RendezvousServer } from '../dist/cluster/collective/rendezvous.js';
import { ringProcessTuned } from '../dist/cluster/collective/process-setup.js';
import { Ring } from '../dist/cluster/collective/ring.js';

const fail = (msg) => {
  process.stderr.write(`bench-two-nodes-rank: ${msg}\n`);
  process.exit(1);
};
const int = (v, what) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) fail(`${what} is ${JSON.stringify(v)}, not a whole number`);
  return n;
};
const [numelArg, repsArg, warmupArg = '2'] = process.argv.slice(2);
if (numelArg === undefined || repsArg === undefined) fail('usage: bench-two-nodes-rank.mjs NUMEL REPS [WARMUP] (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, ADVERTISE_ADDR in the environment)');
const numel = int(numelArg, 'NUMEL');
const reps = int(repsArg, 'REPS');
const warmup = int(warmupArg, 'WARMUP');
const env = process.env;
for (const k of ['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'ADVERTISE_ADDR']) if (!env[k]) fail(`${k} is not set`);
const rank = int(env.RANK, 'RANK');
const world = int(env.WORLD_SIZE, 'WORLD_SIZE');
const port = int(env.MASTER_PORT, 'MASTER_PORT');
if (reps < 1 || world < 1 || rank >= world) fail(`need REPS >= 1 and 0 <= RANK < WORLD_SIZE (got REPS ${reps}, RANK ${rank}, WORLD_SIZE ${world})`);
const TIMEOUT_MS = 60_000;

// Small integers whose sum over the ranks is exact in float32 (as cluster/bench/allreduce-worker.ts).
const span = 2 * Math.floor(1024 / world);
const contribution = (i, r) => ((i * 31 + r * 17) % span) - span / 2;
/** What one all-reduce makes of a value already equal on every rank: world copies summed in float32. */
const sumOfCopies = (v) => {
  let acc = Math.fround(v);
  for (let k = 1; k < world; k++) acc = Math.fround(acc + v);
  return acc;
};

let server;
if (rank === 0) {
  server = new RendezvousServer({ worldSize: world, host: '0.0.0.0', port, timeoutMs: TIMEOUT_MS });
  await server.bind();
  server.waitForRanks().catch((e) => fail(`rendezvous: ${e.message}`));
}
const ring = new Ring({ rank, worldSize: world, transport: 'tcp', host: '0.0.0.0', advertise: env.ADVERTISE_ADDR, timeoutMs: TIMEOUT_MS });
try {
  const endpoint = await ring.bind();
  const endpoints = await rendezvous(`tcp://${env.MASTER_ADDR}:${port}`, { rank, worldSize: world, endpoint, timeoutMs: TIMEOUT_MS });
  await ring.connect(endpoints);

  const mine = new Float32Array(numel);
  const expected = new Float32Array(numel);
  for (let i = 0; i < numel; i++) {
    mine[i] = contribution(i, rank);
    let s = 0;
    for (let r = 0; r < world; r++) s += contribution(i, r);
    expected[i] = s;
  }
  const data = new Float32Array(numel);
  const wrong = (what, i, want) => fail(`rank ${rank}, ${what}: element ${i} is ${data[i]}, expected ${want}`);
  for (let w = 0; w < Math.max(1, warmup); w++) {
    data.set(mine);
    await ring.allReduce(data);
    for (let i = 0; i < numel; i++) if (data[i] !== expected[i]) wrong(`warm-up ${w}`, i, expected[i]);
  }

  await ring.barrier();
  const samplesMs = [];
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    await ring.allReduce(data);
    samplesMs.push(performance.now() - t);
  }
  const ms = (performance.now() - t0) / reps;
  for (let i = 0; i < numel; i++) {
    let want = expected[i];
    for (let r = 0; r < reps; r++) want = sumOfCopies(want);
    if (!Object.is(data[i], want)) wrong(`after ${reps} timed all-reduces`, i, want);
  }
  if (rank === 0) {
    const bytes = numel * 4;
    const algBwGBs = bytes / (ms / 1000) / 1e9;
    const tuned = ringProcessTuned();
    process.stdout.write(
      `${JSON.stringify({ world, bytes, reps, warmup: Math.max(1, warmup), msPerAllreduce: +ms.toFixed(2), algBwGBs: +algBwGBs.toFixed(3), busBwGBs: +((algBwGBs * 2 * (world - 1)) / world).toFixed(3), samplesMs: samplesMs.map((x) => +x.toFixed(2)), checked: true, tuned })}\n`,
    );
  }
} finally {
  await ring.close();
  server?.close();
}
