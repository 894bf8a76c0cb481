#!/usr/bin/env node
// What CURVE costs on a ring link: a 55 MB buffer (SLFER's gradients at width 1) sent over a
// Dealer-Dealer pair on loopback, between two processes (each has its own libzmq I/O thread, which
// is where CURVE encrypts and decrypts, as on two ranks), plaintext and with CURVE. In 2 MiB
// frames, as the ring's pipeline chunks. "one way": A sends, B acknowledges; "both ways": A and B
// send at once, as each rank of a 2-rank ring does. Prints the median of the repetitions.
// Needs the project built (npm run build). Usage: node scripts/bench-curve.mjs [MB] [repetitions]
import { execSync, fork } from 'node:child_process';
import { Dealer } from 'zeromq';
import { RunSecurity } from '../dist/cluster/security/curve.js';
import { generateRunKey } from '../dist/cluster/security/run-key.js';

const CHUNK = 2 << 20;
const HWM = 100_000;

function frames(totalBytes) {
  const buf = Buffer.alloc(totalBytes, 7);
  const out = [];
  for (let at = 0, i = 0; at < totalBytes; at += CHUNK, i++) out.push(buf.subarray(at, Math.min(totalBytes, at + CHUNK)));
  return out;
}

/** Sends every frame (with a 4-byte header as the ring's); receives until `expect` payload bytes came. */
async function exchange(sock, outgoing, expectBytes) {
  const sending = (async () => {
    for (const [i, f] of outgoing.entries()) await sock.send([Buffer.from(Uint32Array.of(i).buffer), f]);
  })();
  let got = 0;
  while (got < expectBytes) {
    const [, payload] = await sock.receive();
    got += payload.length;
  }
  await sending;
}

async function peer() {
  const { mode, key, totalBytes } = JSON.parse(process.argv[3]);
  const security = await RunSecurity.open(mode === 'curve' ? key : null, { onRefused: (l) => process.stderr.write(`peer: ${l}\n`) });
  const sock = security.server(new Dealer({ linger: 0, sendHighWaterMark: HWM, receiveHighWaterMark: HWM }));
  await sock.bind('tcp://127.0.0.1:*');
  process.send({ endpoint: sock.lastEndpoint });
  const mine = frames(totalBytes);
  for (;;) {
    const [cmd] = await sock.receive();
    const c = cmd.toString();
    if (c === 'quit') break;
    if (c === 'one-way') await exchange(sock, [], totalBytes);
    if (c === 'both-ways') await exchange(sock, mine, totalBytes);
    await sock.send('done');
  }
  sock.close();
  security.close();
  process.disconnect();
}

async function measure(mode, key, totalBytes, reps) {
  const child = fork(new URL(import.meta.url), ['peer', JSON.stringify({ mode, key, totalBytes })]);
  const { endpoint } = await new Promise((res) => child.once('message', res));
  const security = await RunSecurity.open(mode === 'curve' ? key : null);
  const sock = security.client(new Dealer({ linger: 0, sendHighWaterMark: HWM, receiveHighWaterMark: HWM }));
  sock.connect(endpoint);
  const mine = frames(totalBytes);
  const result = {};
  for (const kind of ['one-way', 'both-ways']) {
    const times = [];
    for (let r = 0; r < reps + 1; r++) {
      const t0 = process.hrtime.bigint();
      await sock.send(kind);
      await exchange(sock, mine, kind === 'both-ways' ? totalBytes : 0);
      const [done] = await sock.receive();
      if (done.toString() !== 'done') throw new Error(`unexpected ${done}`);
      if (r > 0) times.push(Number(process.hrtime.bigint() - t0) / 1e6); // the first one warms up
    }
    times.sort((a, b) => a - b);
    result[kind] = times[Math.floor(times.length / 2)];
  }
  await sock.send('quit');
  await new Promise((res) => child.once('exit', res));
  sock.close();
  security.close();
  return result;
}

if (process.argv[2] === 'peer') {
  await peer();
} else {
  const mb = Number(process.argv[2] ?? 55);
  const reps = Number(process.argv[3] ?? 5);
  const totalBytes = Math.round(mb * 1e6);
  const cpu = execSync("lscpu | sed -n 's/^Model name:[[:space:]]*//p'", { encoding: 'utf8' }).trim();
  const cores = execSync('nproc', { encoding: 'utf8' }).trim();
  const key = generateRunKey();
  const plain = await measure('plain', key, totalBytes, reps);
  const curve = await measure('curve', key, totalBytes, reps);
  process.stdout.write(`${mb} MB over a Dealer-Dealer pair on loopback, two processes, 2 MiB frames, median of ${reps} (${cpu}, ${cores} cores):\n`);
  for (const kind of ['one-way', 'both-ways']) {
    const rate = (ms) => ((totalBytes / 1e6 / ms) * 1000).toFixed(0);
    process.stdout.write(
      `  ${kind.padEnd(9)}  plaintext ${plain[kind].toFixed(0).padStart(5)} ms (${rate(plain[kind])} MB/s per direction)   CURVE ${curve[kind].toFixed(0).padStart(5)} ms (${rate(curve[kind])} MB/s)   CURVE costs ${(curve[kind] - plain[kind]).toFixed(0)} ms, x${(curve[kind] / plain[kind]).toFixed(2)}\n`,
    );
  }
}
