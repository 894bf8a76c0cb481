import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { curveKeyPair, Dealer, Router, type Socket } from 'zeromq';
import { chooseSecurity, curveClientOptions, isLocalAddress, RunSecurity, securityRequired } from '../../cluster/security/curve.js';
import { formatRunKey, generateRunKey, parseRunKey, publicKeyOf, readRunKey, writeRunKey, z85Decode, z85Encode, type RunKey } from '../../cluster/security/run-key.js';
import { thrown } from '../helpers/thrown.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'slfer-curve-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every wait in this file is bounded: a failed handshake must show as a failed test, never a hang. */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
async function until(ms: number, what: string, cond: () => boolean): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(20);
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const sockets: Socket[] = [];
const securities: RunSecurity[] = [];
function track<S extends Socket>(s: S): S {
  sockets.push(s);
  return s;
}
async function security(key: RunKey | null, lines: string[] = []): Promise<RunSecurity> {
  const s = await RunSecurity.open(key, { onRefused: (l) => lines.push(l) });
  securities.push(s);
  return s;
}
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  for (const s of securities.splice(0)) s.close();
});

/** A CURVE server Router of `sec` on a free loopback port, and its endpoint. */
async function curveRouter(sec: RunSecurity): Promise<{ router: Router; endpoint: string }> {
  const router = track(sec.server(new Router({ linger: 0 })));
  await router.bind('tcp://127.0.0.1:*');
  return { router, endpoint: router.lastEndpoint! };
}
/** A Dealer connected to `endpoint`: a client of `sec` (configured before connect(), when options take effect), or with raw `opts`. */
function dealer(endpoint: string, sec?: RunSecurity, opts: ConstructorParameters<typeof Dealer>[0] = {}): Dealer {
  const d = track(new Dealer({ linger: 0, reconnectInterval: 50, ...opts }));
  sec?.client(d);
  d.connect(endpoint);
  return d;
}
/** The payload of the next message the Router receives (its frames are [routing id, payload]). */
async function nextPayload(router: Router, ms = 3000): Promise<string> {
  const [, payload] = await within(ms, 'router receive', router.receive());
  return payload.toString();
}
/** Proves the server still works: a good client of the run is heard and answered. */
async function stillServes(router: Router, sec: RunSecurity, endpoint: string, tag: string): Promise<void> {
  const good = dealer(endpoint, sec);
  await good.send(tag);
  const [id, payload] = await within(3000, 'good client after the attack', router.receive());
  expect(payload.toString()).toBe(tag);
  await router.send([id, `re:${tag}`]);
  expect((await within(3000, 'answer to the good client', good.receive()))[0].toString()).toBe(`re:${tag}`);
}

describe('run key files', () => {
  it('derives the public key from the secret key exactly as libzmq does', () => {
    for (let i = 0; i < 50; i++) {
      const kp = curveKeyPair();
      expect(publicKeyOf(kp.secretKey)).toBe(kp.publicKey);
    }
    const bytes = randomBytes(32);
    expect(z85Decode(z85Encode(bytes))).toEqual(bytes);
    // ZeroMQ's Z85 test vector (rfc.zeromq.org/spec/32).
    expect(z85Encode(Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]))).toBe('HelloWorld');
  });

  it('writes 0600 whatever the umask, reads it back, and refuses to overwrite without force', () => {
    const file = join(dir, 'sub', 'run.key');
    const old = process.umask(0);
    let key: RunKey;
    try {
      key = writeRunKey(file);
    } finally {
      process.umask(old);
    }
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readRunKey(file)).toEqual(key);
    expect(readFileSync(file, 'utf8')).toMatch(/^# slfer-dist run key/);
    const before = readFileSync(file, 'utf8');
    const e = thrown(() => writeRunKey(file));
    expect(e.code).toBe('SLFER_RUN_KEY_EXISTS');
    expect(e.hint).toContain('--force');
    expect(readFileSync(file, 'utf8')).toBe(before);
    const replaced = writeRunKey(file, { force: true });
    expect(replaced.publicKey).not.toBe(key.publicKey);
    expect(readRunKey(file)).toEqual(replaced);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // Nothing left beside it: the temporary file was linked or renamed into place, then removed.
    expect(readdirSync(join(dir, 'sub'))).toEqual(['run.key']);
  });

  it('refuses a file others can read, naming it, its mode and chmod 600', () => {
    const file = join(dir, 'open.key');
    writeRunKey(file);
    for (const mode of [0o644, 0o640, 0o604]) {
      chmodSync(file, mode);
      const e = thrown(() => readRunKey(file));
      expect(e.code).toBe('SLFER_RUN_KEY_UNSAFE');
      expect(e.message).toContain(file);
      expect(e.message).toContain(`0${mode.toString(8)}`);
      expect(e.hint).toContain(`chmod 600 ${file}`);
    }
    chmodSync(file, 0o400);
    expect(readRunKey(file).publicKey).toHaveLength(40);
    // A symlink is judged by its target.
    const link = join(dir, 'link.key');
    symlinkSync(file, link);
    expect(readRunKey(link)).toEqual(readRunKey(file));
    chmodSync(file, 0o644);
    expect(thrown(() => readRunKey(link)).code).toBe('SLFER_RUN_KEY_UNSAFE');
  });

  it('reads a Kubernetes Secret volume (run.key -> ..data/run.key): 0400 and 0440 pass, 0644 names defaultMode', () => {
    // The kubelet's atomic writer layout: a timestamped folder, ..data pointing at it, and one symlink per key.
    const vol = join(dir, 'secret-volume');
    const stamped = join(vol, '..2026_01_01_00_00_00.000000001');
    mkdirSync(stamped, { recursive: true });
    writeFileSync(join(stamped, 'run.key'), formatRunKey(generateRunKey()));
    symlinkSync('..2026_01_01_00_00_00.000000001', join(vol, '..data'));
    symlinkSync('..data/run.key', join(vol, 'run.key'));
    const file = join(vol, 'run.key');
    for (const mode of [0o400, 0o600, 0o440]) {
      chmodSync(join(stamped, 'run.key'), mode);
      expect(readRunKey(file).secretKey).toHaveLength(40);
    }
    chmodSync(join(stamped, 'run.key'), 0o644); // Kubernetes' default mode
    const e = thrown(() => readRunKey(file));
    expect(e.code).toBe('SLFER_RUN_KEY_UNSAFE');
    expect(e.hint).toContain('defaultMode: 0400');
    // Outside a Secret volume group read is refused.
    const plain = join(dir, 'group.key');
    writeRunKey(plain);
    chmodSync(plain, 0o440);
    expect(thrown(() => readRunKey(plain)).code).toBe('SLFER_RUN_KEY_UNSAFE');
  });

  it('refuses bad Z85, a wrong length, a mismatched pair and unknown lines, naming the file and line', () => {
    const a = generateRunKey();
    const b = generateRunKey();
    const cases: Array<[string, RegExp]> = [
      [`public-key = ${a.publicKey}\nsecret-key = ${a.secretKey.slice(0, 39)}~\n`, /:2: secret-key is not a Z85 CURVE key: character "~" at position 40/],
      [`# comment\n\npublic-key = ${a.publicKey.slice(0, 35)}\nsecret-key = ${a.secretKey}\n`, /:3: public-key is not a Z85 CURVE key: 35 characters, a CURVE key has 40/],
      [`public-key = ${'#'.repeat(40)}\nsecret-key = ${a.secretKey}\n`, /:1: public-key is not a Z85 CURVE key: "#####" at position 1 is out of range/],
      [`public-key = ${b.publicKey}\nsecret-key = ${a.secretKey}\n`, /:1: public-key is not the public key of secret-key/],
      [`public-key = ${a.publicKey}\n`, /: no secret-key line/],
      [`public-key = ${a.publicKey}\nsecret-key = ${a.secretKey}\nuser = me\n`, /:3: expected "public-key = …" or "secret-key = …"/],
      [`public-key = ${a.publicKey}\npublic-key = ${a.publicKey}\n`, /:2: public-key given twice \(first on line 1\)/],
    ];
    for (const [i, [text, message]] of cases.entries()) {
      const file = join(dir, `bad-${i}.key`);
      writeFileSync(file, text, { mode: 0o600 });
      const e = thrown(() => readRunKey(file));
      expect(e.code, text).toBe('SLFER_RUN_KEY_INVALID');
      expect(e.message).toContain(file);
      expect(e.message).toMatch(message);
      expect(e.hint).toContain('slfer-dist keygen');
    }
    // Z85 uses '=' and '#' itself: a key holding them still parses (split at the first '=' only).
    expect(parseRunKey(formatRunKey(a), 'x')).toEqual(a);
    expect(thrown(() => readRunKey(join(dir, 'missing.key'))).code).toBe('SLFER_RUN_KEY_NOT_FOUND');
  });
});

describe('when CURVE is required', () => {
  it('is required as soon as one address leaves the machine', () => {
    for (const a of ['tcp://127.0.0.1:*', 'tcp://127.0.0.1:5555', 'tcp://localhost:1', 'tcp://[::1]:7', 'tcp://lo:9', 'ipc:///tmp/x.sock', 'inproc://a', '127.0.0.1', '::1']) {
      expect(isLocalAddress(a), a).toBe(true);
    }
    for (const a of ['tcp://0.0.0.0:29500', 'tcp://*:1', 'tcp://10.0.0.2:5', 'tcp://[::]:5', 'tcp://eth0:5', 'tcp://node-1.svc:29500', 'tcp://127.0.0.1:5;10.0.0.1:6', '0.0.0.0', 'pgm://eth0;239.192.1.1:5555']) {
      expect(isLocalAddress(a), a).toBe(false);
    }
    expect(securityRequired(['tcp://127.0.0.1:*', 'ipc:///tmp/r'])).toBe(false);
    expect(securityRequired(['tcp://127.0.0.1:*', 'tcp://0.0.0.0:29500'])).toBe(true);
    expect(securityRequired({ multiMachine: true })).toBe(true);
    expect(securityRequired({ multiMachine: false })).toBe(false);
  });

  it('refuses a multi-machine run without a key, unless --insecure says so out loud', () => {
    const e = thrown(() => chooseSecurity(['tcp://0.0.0.0:29500'], {}));
    expect(e.code).toBe('SLFER_SECURITY_REQUIRED');
    expect(e.message).toContain('tcp://0.0.0.0:29500 is beyond loopback');
    expect(e.hint).toContain('slfer-dist keygen --out FILE');
    expect(e.hint).toContain('--auth-key FILE');
    expect(e.hint).toContain('--insecure');
    expect(thrown(() => chooseSecurity({ multiMachine: true }, {})).message).toContain('this run spans machines');
    const insecure = chooseSecurity({ multiMachine: true }, { insecure: true });
    expect(insecure).toMatchObject({ kind: 'none', insecure: true, note: expect.stringContaining('WARNING: --insecure') });
    expect(chooseSecurity(['tcp://127.0.0.1:*'], {})).toMatchObject({ kind: 'none', insecure: false });
    const file = join(dir, 'policy.key');
    const key = writeRunKey(file);
    expect(chooseSecurity(['tcp://127.0.0.1:*'], { authKey: file })).toEqual({ kind: 'curve', key, keyFile: file });
    expect(thrown(() => chooseSecurity({ multiMachine: true }, { authKey: file, insecure: true })).code).toBe('SLFER_INVALID_ARGUMENT');
  });
});

describe('CURVE sockets over TCP on 127.0.0.1', () => {
  it('a Router and a Dealer of the run talk, encrypted, both ways', async () => {
    const lines: string[] = [];
    const sec = await security(generateRunKey(), lines);
    const { router, endpoint } = await curveRouter(sec);
    const d = dealer(endpoint, sec);
    await d.send('hello');
    const [id, payload] = await within(3000, 'first message', router.receive());
    expect(payload.toString()).toBe('hello');
    await router.send([id, 'welcome']);
    expect((await within(3000, 'answer', d.receive()))[0].toString()).toBe('welcome');
    expect(router.securityMechanism).toBe('curve');
    expect(d.securityMechanism).toBe('curve');
    expect(lines).toEqual([]);
  });

  it('refuses a client with another keypair, never delivers it, and logs that once over many attempts', async () => {
    const lines: string[] = [];
    const sec = await security(generateRunKey(), lines);
    const { router, endpoint } = await curveRouter(sec);
    const other = curveKeyPair();
    // It knows the server's public key (that is not secret), but its own key is not the run's.
    const attackers = [0, 1, 2].map(() => dealer(endpoint, undefined, { curveServerKey: sec.key!.publicKey, curvePublicKey: other.publicKey, curveSecretKey: other.secretKey }));
    for (const a of attackers) void a.send('evil').catch(() => {});
    await until(3000, 'refusal logged', () => lines.length > 0);
    await sleep(300); // further attempts land meanwhile
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('from 127.0.0.1');
    expect(lines[0]).toContain(`public key ${other.publicKey}`);
    expect(lines[0]).toContain("not this run's key");
    await stillServes(router, sec, endpoint, 'good'); // the first thing the Router ever receives
  });

  it('ignores a plaintext client, logs it once, and keeps serving the good one', async () => {
    const lines: string[] = [];
    const sec = await security(generateRunKey(), lines);
    const { router, endpoint } = await curveRouter(sec);
    const good = dealer(endpoint, sec);
    await good.send('before');
    expect(await nextPayload(router)).toBe('before');
    for (let i = 0; i < 3; i++) void dealer(endpoint).send('plain').catch(() => {});
    await until(3000, 'plaintext logged', () => lines.length > 0);
    await sleep(300);
    expect(lines).toEqual([expect.stringContaining('it does not use CURVE (a plaintext client')]);
    await good.send('after');
    expect(await nextPayload(router)).toBe('after');
  });

  it('ignores random bytes, an HTTP probe and half a greeting on the CURVE port, logs each kind once, and keeps serving', async () => {
    const lines: string[] = [];
    const sec = await security(generateRunKey(), lines);
    const { router, endpoint } = await curveRouter(sec);
    const good = dealer(endpoint, sec);
    await good.send('before');
    expect(await nextPayload(router)).toBe('before');
    const port = Number(endpoint.split(':').pop());
    // Fixed bytes, so the test sees the same libzmq code paths every run.
    const noise = Buffer.concat(Array.from({ length: 64 }, (_, i) => createHash('sha512').update(`junk ${i}`).digest()));
    noise[0] = 0x42; // not ZMTP's 0xFF signature: libzmq takes it for an unversioned ZMTP 1.0 peer and drops it
    const junk = [
      noise,
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.concat([Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f]), noise.subarray(0, 54)]), // a ZMTP 3 signature, then noise
      Buffer.alloc(0), // connect and hang up
    ];
    for (let round = 0; round < 3; round++) {
      for (const bytes of junk) {
        await within(
          3000,
          'the server drops the junk connection',
          new Promise<void>((res) => {
            const s = connect(port, '127.0.0.1', () => s.end(bytes));
            s.on('error', () => {});
            s.on('close', () => res());
            s.resume();
          }),
        );
      }
    }
    await until(3000, 'junk logged', () => lines.length > 0);
    await sleep(300);
    // Each distinct kind once, however often it came; what libzmq made of each is its business.
    expect(new Set(lines).size, lines.join('\n')).toBe(lines.length);
    expect(lines.length, lines.join('\n')).toBeLessThanOrEqual(junk.length);
    expect(lines).toContain(`ignored a connection to ${endpoint} that closed without completing a ZeroMQ handshake (not a ZeroMQ peer: a port scanner, another protocol, or garbage)`);
    await good.send('after');
    expect(await nextPayload(router)).toBe('after');
    await stillServes(router, sec, endpoint, 'new-client');
  });

  it('a client with the wrong server key never connects; the server logs it once and is unharmed', async () => {
    const lines: string[] = [];
    const sec = await security(generateRunKey(), lines);
    const { router, endpoint } = await curveRouter(sec);
    const wrong = curveKeyPair();
    const d = dealer(endpoint, undefined, { curveServerKey: wrong.publicKey, curvePublicKey: sec.key!.publicKey, curveSecretKey: sec.key!.secretKey });
    void d.send('lost').catch(() => {});
    await until(3000, 'wrong server key logged', () => lines.length > 0);
    await sleep(400); // it keeps reconnecting every 50 ms
    expect(lines).toEqual([expect.stringContaining("does not decrypt with this run's key")]);
    await stillServes(router, sec, endpoint, 'good');
  });

  it('processes given different key files: the server refuses the client, and both sides say why, once', async () => {
    const serverLines: string[] = [];
    const clientLines: string[] = [];
    const serverSec = await security(generateRunKey(), serverLines);
    const clientSec = await security(generateRunKey(), clientLines);
    const { router, endpoint } = await curveRouter(serverSec);
    void dealer(endpoint, clientSec).send('x').catch(() => {});
    await until(3000, 'both sides logged', () => serverLines.length > 0 && clientLines.length > 0);
    await sleep(300);
    expect(serverLines).toHaveLength(1);
    expect(clientLines).toEqual([expect.stringMatching(/^cannot join tcp:\/\/127\.0\.0\.1:\d+: it hung up during the CURVE handshake/)]);
    await stillServes(router, serverSec, endpoint, 'good');
  });

  it('a Dealer-Dealer link as the ring makes it (the binding side is the server) carries 8 MB both ways', async () => {
    const sec = await security(generateRunKey());
    const fromPrev = track(sec.server(new Dealer({ linger: 0 })));
    await fromPrev.bind('tcp://127.0.0.1:*');
    const toNext = track(sec.client(new Dealer({ linger: 0 })));
    toNext.connect(fromPrev.lastEndpoint!);
    const data = randomBytes(8 << 20);
    await toNext.send([Buffer.from([1, 0, 0, 0]), data]);
    const [header, payload] = await within(10_000, 'ring payload', fromPrev.receive());
    expect(header).toEqual(Buffer.from([1, 0, 0, 0]));
    expect(payload.equals(data)).toBe(true);
    await fromPrev.send('ack');
    expect((await within(3000, 'ack', toNext.receive()))[0].toString()).toBe('ack');
  });

  it('shares one ZAP handler between RunSecurity instances, and fails closed once it is gone', async () => {
    const a = await security(generateRunKey());
    const bLines: string[] = [];
    const b = await security(generateRunKey(), bLines);
    const { router, endpoint } = await curveRouter(b);
    a.close(); // b's server still admits b's clients
    await stillServes(router, b, endpoint, 'one');
    b.close(); // the last one: the handler goes, and with it every admission
    const late = dealer(endpoint, undefined, curveClientOptions(b.key!));
    void late.send('late').catch(() => {});
    router.receiveTimeout = 800;
    await expect(router.receive()).rejects.toMatchObject({ code: 'EAGAIN' });
    expect(bLines).toEqual([expect.stringContaining('no ZAP handler is running')]);
    // A new RunSecurity starts the handler again.
    const c = await security(generateRunKey());
    const again = await curveRouter(c);
    await stillServes(again.router, c, again.endpoint, 'two');
  });

  it('without a key leaves sockets as they are', async () => {
    const sec = await security(null);
    expect(sec.curve).toBe(false);
    const r = track(sec.server(new Router({ linger: 0 })));
    await r.bind('tcp://127.0.0.1:*');
    const d = dealer(r.lastEndpoint!, sec);
    await d.send('plain');
    expect(await nextPayload(r)).toBe('plain');
    expect(r.securityMechanism).toBe(null);
  });

  it('a worker thread (as the heartbeat) configures its client from the key as plain data', async () => {
    // Runs the compiled module (npx tsc -p tsconfig.json first), as cluster/worker.ts runs heartbeat-thread.js.
    const compiled = resolve('dist/cluster/security/curve.js');
    expect(existsSync(compiled), 'build first: npx tsc -p tsconfig.json').toBe(true);
    const sec = await security(generateRunKey());
    const { router, endpoint } = await curveRouter(sec);
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      (async () => {
        const { Dealer } = await import('zeromq');
        const { configureCurveClient } = await import(${JSON.stringify(pathToFileURL(compiled).href)});
        const d = new Dealer({ linger: 0 });
        configureCurveClient(d, workerData.key, (line) => parentPort.postMessage('refused: ' + line));
        d.connect(workerData.endpoint);
        await d.send('beat');
        parentPort.once('message', () => { d.close(); parentPort.close(); });
      })().catch((e) => parentPort.postMessage('error: ' + e.message));
    `;
    const w = new Worker(code, { eval: true, workerData: { key: { ...sec.key! }, endpoint } });
    const problems: string[] = [];
    w.on('message', (m: string) => problems.push(m));
    try {
      expect(await nextPayload(router, 5000)).toBe('beat');
      expect(problems).toEqual([]);
      w.postMessage('stop');
      await within(3000, 'worker exit', new Promise((res) => w.once('exit', res)));
    } finally {
      await w.terminate();
    }
  });
});
