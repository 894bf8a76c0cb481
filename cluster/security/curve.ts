import { capability, context as zmqContext, Router, type Socket } from 'zeromq';
import { errors } from '../../src/errors.js';
import { readRunKey, z85Decode, z85Encode, type RunKey } from './run-key.js';

/**
 * CURVE for every socket of a run, with one run key (run-key.ts).
 *
 * - A socket that binds is a CURVE server (`server()`), a socket that connects a CURVE client
 *   (`client()`); for a Dealer-Dealer ring link the binding side is the server. Every process holds
 *   the same keypair, so a client's server key is the run's public key, and so is its own.
 * - CURVE alone would let in any client that knows the server's public key, which is not secret.
 *   The ZAP handler (ZeroMQ RFC 27: a Router at inproc://zeromq.zap.01 in the process's context,
 *   asked by libzmq during every handshake) admits exactly the run's public key, i.e. only a client
 *   that proved it holds the run's secret key. Servers also set zapEnforceDomain, so if the handler
 *   is not running a handshake fails instead of passing unchecked.
 * - Refusals never throw and never stop the run: a wrong key is refused (ZAP status 400), a
 *   plaintext client, a wrong server key or garbage is dropped by libzmq during the handshake.
 *   Each distinct refusal is reported once through `onRefused`.
 *
 * The global ZeroMQ context is shared by every thread of a process, so there is one ZAP handler
 * per process, started by the first RunSecurity opened on the main thread and closed with the last.
 * Worker threads only make clients, which need no ZAP: give them the key as plain data and call
 * configureCurveClient() there.
 */

export const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
/** ZAP status codes (RFC 27): libzmq fails the handshake on anything but 200. */
const ZAP_OK = '200';
const ZAP_REFUSED = '400';
const ZAP_INTERNAL = '500';
/** Most distinct refusal lines one RunSecurity reports, so a flood of scanners cannot flood the log. */
const MAX_REFUSAL_LINES = 100;

export interface CurveClientOptions {
  curveServerKey: string;
  curvePublicKey: string;
  curveSecretKey: string;
}

/** Socket options of a CURVE client of this run (for a constructor: `new Dealer({ ...curveClientOptions(key), linger })`). */
export function curveClientOptions(key: RunKey): CurveClientOptions {
  return { curveServerKey: key.publicKey, curvePublicKey: key.publicKey, curveSecretKey: key.secretKey };
}

/**
 * Makes `socket` a CURVE client of the run, before it connects. For worker threads (the heartbeat):
 * the key travels as plain data in workerData. With `onRefused`, a failed handshake (the server
 * refused our key, or has another key, or no CURVE) is reported once per endpoint and kind.
 */
export function configureCurveClient(socket: Socket, key: RunKey, onRefused?: (line: string) => void): void {
  requireCurve();
  Object.assign(socket, curveClientOptions(key));
  if (onRefused) watchClient(socket, new OnceLog(onRefused));
}

/**
 * True when this run's sockets need CURVE: whenever any address this process binds or connects to
 * is beyond loopback (a connection to another machine means the run spans machines). Addresses
 * are ZeroMQ endpoints (`tcp://0.0.0.0:29500`, `tcp://[::1]:*`, `ipc://…`) or bare hosts; ipc and
 * inproc never leave the machine. Or say it directly: `{ multiMachine: true }`.
 */
export function securityRequired(scope: readonly string[] | { multiMachine: boolean }): boolean {
  return beyondLoopback(scope) !== undefined;
}

/** The first address beyond loopback (or 'multiMachine'), undefined when there is none. */
function beyondLoopback(scope: readonly string[] | { multiMachine: boolean }): string | undefined {
  if (!Array.isArray(scope)) return (scope as { multiMachine: boolean }).multiMachine ? 'multiMachine' : undefined;
  return (scope as readonly string[]).find((a) => !isLocalAddress(a));
}

/** Whether an endpoint or host stays on this machine: loopback TCP, ipc or inproc. */
export function isLocalAddress(address: string): boolean {
  const m = /^([a-z]+):\/\/(.*)$/i.exec(address.trim());
  if (m && (m[1] === 'ipc' || m[1] === 'inproc')) return true;
  let host = m ? m[2] : address.trim();
  if (m) {
    if (m[1] !== 'tcp' && m[1] !== 'ws' && m[1] !== 'wss') return false; // pgm, udp, …: not ours, be safe
    host = host.slice(host.lastIndexOf(';') + 1); // connect's "source;destination": the destination
    const port = host.lastIndexOf(':');
    if (port > 0 && (host.startsWith('[') ? host[port - 1] === ']' : host.indexOf(':') === port)) host = host.slice(0, port);
  }
  host = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return host === 'localhost' || host === 'lo' || host === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(host);
}

/** What a run does about security, from the policy: CURVE with the run key, or plaintext and why. */
export type SecurityChoice = { kind: 'curve'; key: RunKey; keyFile: string } | { kind: 'none'; insecure: boolean; note: string };

/**
 * The policy. A key given is always used. Without one: plaintext when everything stays on this
 * machine; beyond loopback, SLFER_SECURITY_REQUIRED unless `insecure`, which runs plaintext and
 * says so out loud (log `note`).
 */
export function chooseSecurity(scope: readonly string[] | { multiMachine: boolean }, flags: { authKey?: string; insecure?: boolean }): SecurityChoice {
  if (flags.authKey !== undefined && flags.insecure) {
    throw errors.invalidArgument('--auth-key and --insecure', 'ask for CURVE and for none at once', 'pass --auth-key FILE to secure the run, or --insecure alone');
  }
  if (flags.authKey !== undefined) return { kind: 'curve', key: readRunKey(flags.authKey), keyFile: flags.authKey };
  const outside = beyondLoopback(scope);
  if (outside === undefined) return { kind: 'none', insecure: false, note: 'every socket stays on this machine: no CURVE' };
  const why = outside === 'multiMachine' ? 'this run spans machines' : `${outside} is beyond loopback`;
  if (!flags.insecure) throw errors.securityRequired(why);
  return {
    kind: 'none',
    insecure: true,
    note: `WARNING: --insecure: ${why}, and the run's sockets are neither authenticated nor encrypted: anyone who can reach its ports can send it messages and read its gradients`,
  };
}

function requireCurve(): void {
  if (!capability.curve) {
    throw errors.securityUnavailable(
      'this zeromq build has no CURVE support',
      'reinstall the zeromq package from npm (its prebuilt binaries include CURVE), or pass --insecure on a network you trust',
    );
  }
}

/** Reports each distinct line once, up to MAX_REFUSAL_LINES; a throwing callback is swallowed (a log must not break the run). */
class OnceLog {
  private readonly seen = new Set<string>();
  private full = false;
  constructor(private readonly sink: (line: string) => void) {}
  report(key: string, line: string): void {
    if (this.seen.has(key) || this.full) return;
    if (this.seen.size >= MAX_REFUSAL_LINES) {
      this.full = true;
      line = `${MAX_REFUSAL_LINES} distinct refusals reported; further ones are refused without a log line`;
    } else {
      this.seen.add(key);
    }
    try {
      this.sink(line);
    } catch {
      // the run goes on
    }
  }
}

interface Admission {
  publicKey: Buffer;
  log: OnceLog;
}

/** The process's ZAP handler: one Router, one domain per open RunSecurity. */
interface ZapHandler {
  router: Router | undefined;
  domains: Map<string, Admission>;
  ready: Promise<void>;
}

let zap: ZapHandler | undefined;
let nextDomain = 1;
/**
 * libzmq releases an inproc endpoint in its reaper thread some time after close(), so a handler
 * bound again at once can find it taken: retry for up to a second (one 10 ms retry measured).
 * Not unbind() first: unbinding inproc://zeromq.zap.01 while sessions still hold ZAP pipes aborts
 * the process in libzmq 4.3.5 (pipe.cpp:355 `_state == term_ack_sent || _state == term_req_sent2`).
 */
const ZAP_BIND_RETRIES = 100;
const ZAP_BIND_RETRY_MS = 10;

async function bindZap(): Promise<Router> {
  for (let attempt = 0; ; attempt++) {
    const router = new Router({ linger: 0 });
    try {
      await router.bind(ZAP_ENDPOINT);
      return router;
    } catch (e) {
      router.close();
      if ((e as { code?: string }).code !== 'EADDRINUSE' || attempt >= ZAP_BIND_RETRIES) {
        throw errors.securityUnavailable(
          `cannot bind the ZAP handler at ${ZAP_ENDPOINT}: ${(e as Error).message}`,
          'open RunSecurity on the main thread only, and start no other ZAP handler in the process (worker threads share its ZeroMQ context and need none)',
          e,
        );
      }
      await new Promise((r) => setTimeout(r, ZAP_BIND_RETRY_MS));
    }
  }
}

async function registerDomain(domain: string, admission: Admission): Promise<void> {
  if (!zap) {
    const handler: ZapHandler = { router: undefined, domains: new Map(), ready: Promise.resolve() };
    handler.ready = bindZap().then(
      (router) => {
        handler.router = router;
        void serveZap(router, handler);
      },
      (e: unknown) => {
        if (zap === handler) zap = undefined;
        throw e;
      },
    );
    zap = handler;
  }
  const handler = zap;
  handler.domains.set(domain, admission);
  try {
    await handler.ready;
  } catch (e) {
    handler.domains.delete(domain);
    throw e;
  }
}

function unregisterDomain(domain: string): void {
  const handler = zap;
  if (!handler || !handler.domains.delete(domain) || handler.domains.size > 0) return;
  zap = undefined;
  handler.router!.close(); // registerDomain returned, so it is bound
}

async function serveZap(router: Router, handler: ZapHandler): Promise<void> {
  for (;;) {
    let frames: Buffer[];
    try {
      frames = await router.receive();
    } catch {
      return; // closed
    }
    const reply = zapReply(handler, frames);
    if (!reply) continue;
    try {
      await router.send(reply);
    } catch {
      if (router.closed) return;
    }
  }
}

/**
 * RFC 27 request, as a Router receives it: [peer, '', version, request id, domain, address,
 * identity, mechanism, ...credentials]; for CURVE the one credential is the client's 32-byte public
 * key. The reply is [peer, '', version, request id, status, text, user id, metadata].
 */
function zapReply(handler: ZapHandler, frames: Buffer[]): Buffer[] | undefined {
  if (frames.length < 8 || frames[1].length !== 0) return undefined; // not libzmq: nothing sensible to answer
  const [peer, , version, requestId, domainFrame, addressFrame, , mechanismFrame, ...credentials] = frames;
  const answer = (status: string, text: string, userId = '') => [peer, Buffer.alloc(0), Buffer.from('1.0'), requestId, Buffer.from(status), Buffer.from(text), Buffer.from(userId), Buffer.alloc(0)];
  if (version.toString() !== '1.0') return answer(ZAP_INTERNAL, 'unsupported ZAP version');
  const domain = domainFrame.toString();
  const address = addressFrame.toString() || 'an unknown address';
  const mechanism = mechanismFrame.toString();
  const admission = handler.domains.get(domain);
  if (!admission) {
    // A server socket of this process that RunSecurity.server() did not configure: fail closed, and say so.
    for (const a of handler.domains.values()) a.log.report(`domain ${domain}`, `refused a ${mechanism} client from ${address} at a socket with ZAP domain "${domain}", which no open RunSecurity owns (a server socket not set up with RunSecurity.server(), or one still open after its RunSecurity closed)`);
    return answer(ZAP_REFUSED, 'unknown ZAP domain');
  }
  if (mechanism !== 'CURVE') {
    admission.log.report(`${mechanism} ${address}`, `refused a ${mechanism} client from ${address}: this run admits CURVE clients only`);
    return answer(ZAP_REFUSED, 'CURVE only');
  }
  const key = credentials[0];
  // No user id: with one, libzmq attaches it as metadata to every message, and zeromq.js 6.8 then
  // fails the first receive() of a multipart message with a large frame (EAGAIN, and each later
  // receive returns the previous message): exactly the ring's first [header, payload].
  if (key && key.equals(admission.publicKey)) return answer(ZAP_OK, 'OK');
  const shown = key?.length === 32 ? `public key ${z85Encode(key)}` : 'a malformed key';
  admission.log.report(
    `CURVE ${address} ${key?.toString('hex')}`,
    `refused a CURVE client from ${address} with ${shown}: not this run's key (a process started with another --auth-key file, or not part of this run)`,
  );
  return answer(ZAP_REFUSED, "not this run's key");
}

/**
 * Logs handshake failures that never reach ZAP: libzmq drops a plaintext client
 * (ERR_ZMTP_MECHANISM_MISMATCH), a wrong server key (ERR_ZMTP_CRYPTOGRAPHIC) or other junk during
 * the handshake and tells only the socket monitor. A peer that is not ZeroMQ at all (random bytes,
 * an HTTP probe) is dropped silently: it shows only as a connection that closed with no handshake
 * outcome, which the counters below detect (events of one socket arrive in order; an auth failure
 * was already logged by ZAP, with the peer's address and key).
 */
function watchServer(socket: Socket, log: OnceLog): void {
  let pending = 0; // accepted, no handshake outcome yet
  let failed = 0; // handshake failed, its disconnect not seen yet
  const events = socket.events;
  events.on('accept', () => void pending++);
  events.on('handshake', () => void (pending = Math.max(0, pending - 1)));
  const failure = (what: string, address: string) => {
    pending = Math.max(0, pending - 1);
    failed++;
    if (what) log.report(`${address} ${what}`, `ignored a client at ${address}: ${what}`);
  };
  events.on('handshake:error:protocol', (e) => failure(protocolProblem(e.error.code, 'server'), e.address));
  events.on('handshake:error:auth', (e) => failure(e.error.status === 400 ? '' : `ZAP answered ${e.error.status} (${e.error.message})`, e.address));
  // EFAULT is libzmq's word for "zapEnforceDomain and no ZAP handler": every client is refused.
  events.on('handshake:error:other', (e) => {
    if (e.error.code === 'EPIPE' || e.error.code === 'ECONNRESET') {
      // The peer hung up mid-handshake: one more connection that never was a ZeroMQ peer of ours.
      failure('', e.address);
      log.report(`${e.address} no-handshake`, noHandshake(e.address));
    } else {
      failure(e.error.code === 'EFAULT' ? 'no ZAP handler is running (the socket outlived its RunSecurity), so every client is refused' : `the handshake failed (${e.error.message})`, e.address);
    }
  });
  events.on('disconnect', (e) => {
    if (failed > 0) failed--;
    else if (pending > 0) {
      pending--;
      log.report(`${e.address} no-handshake`, noHandshake(e.address));
    }
  });
}

const noHandshake = (address: string) => `ignored a connection to ${address} that closed without completing a ZeroMQ handshake (not a ZeroMQ peer: a port scanner, another protocol, or garbage)`;

function watchClient(socket: Socket, log: OnceLog): void {
  const events = socket.events;
  events.on('handshake:error:protocol', (e) => log.report(`${e.address} ${e.error.code}`, `cannot join ${e.address}: ${protocolProblem(e.error.code, 'client')}`));
  events.on('handshake:error:auth', (e) =>
    log.report(`${e.address} auth`, `cannot join ${e.address}: it refused this process's key (ZAP ${e.error.status}): the processes of the run were given different --auth-key files`),
  );
  // libzmq says only EPIPE/ECONNRESET when the server hangs up mid-handshake, which is what a
  // CURVE server does when our server key (the run's public key) is not its own.
  events.on('handshake:error:other', (e) =>
    log.report(`${e.address} other`, `cannot join ${e.address}: it hung up during the CURVE handshake (${e.error.message}): it has another run key (different --auth-key files?) or is not a slfer-dist process`),
  );
}

function protocolProblem(code: string, side: 'server' | 'client'): string {
  if (code === 'ERR_ZMTP_MECHANISM_MISMATCH') {
    return side === 'server' ? 'it does not use CURVE (a plaintext client: started without --auth-key?)' : 'it does not use CURVE (started without --auth-key, or with --insecure?)';
  }
  if (code === 'ERR_ZMTP_CRYPTOGRAPHIC' || code === 'ERR_ZMTP_KEY_EXCHANGE') {
    return side === 'server' ? `its CURVE handshake does not decrypt with this run's key (${code}: it has another run key as server key, or is not a slfer-dist process)` : `the CURVE handshake failed (${code}): it has another run key`;
  }
  return `protocol error during the handshake (${code})`;
}

export interface RunSecurityOptions {
  /** Called once per distinct refusal (wrong key, plaintext client, garbage, …) with one log line. Default: stderr. */
  onRefused?: (line: string) => void;
}

/**
 * The security of one process of a run: CURVE with the run key, or none (`RunSecurity.open(null)`:
 * server() and client() leave sockets as they are). Configure each socket before its bind() or
 * connect() (libzmq applies security options then; later they are ignored with only a warning);
 * close() after the sockets. With CURVE each configured socket gets a monitor (socket.events, read
 * with .on(): use .on() for its other events too), which keeps the process alive until the socket
 * is closed.
 */
export class RunSecurity {
  /** The run key: plain data, to hand to a worker thread (configureCurveClient) or a child process. Undefined without CURVE. */
  readonly key: RunKey | undefined;
  private readonly log: OnceLog;
  private readonly domain: string | undefined;
  private closed = false;

  private constructor(key: RunKey | undefined, log: OnceLog, domain: string | undefined) {
    this.key = key;
    this.log = log;
    this.domain = domain;
  }

  /** CURVE with `key`, starting the process's ZAP handler if it is not running; null: no security. */
  static async open(key: RunKey | null, opts: RunSecurityOptions = {}): Promise<RunSecurity> {
    const log = new OnceLog(opts.onRefused ?? ((line) => process.stderr.write(`slfer-dist: ${line}\n`)));
    if (!key) return new RunSecurity(undefined, log, undefined);
    requireCurve();
    const publicKey = z85Decode(key.publicKey);
    if (typeof publicKey === 'string' || publicKey.length !== 32) throw errors.invalidArgument('RunSecurity key', `publicKey is not a Z85 CURVE key (${typeof publicKey === 'string' ? publicKey : `${publicKey.length} bytes`})`, 'pass a key from readRunKey()');
    const domain = `slfer-run-${process.pid}-${nextDomain++}`;
    await registerDomain(domain, { publicKey, log });
    return new RunSecurity(key, log, domain);
  }

  get curve(): boolean {
    return this.key !== undefined;
  }

  /** Makes a socket that binds a CURVE server admitting only the run's key (before bind()). */
  server<S extends Socket>(socket: S): S {
    if (!this.key) return socket;
    this.assertOpen();
    // The ZAP handler lives in the global context; a socket of another context would find none (and fail closed).
    if (socket.context !== zmqContext) throw errors.invalidArgument('RunSecurity.server socket', 'belongs to a ZeroMQ context of its own', 'create server sockets in the global context (no `context` option)');
    socket.curveServer = true;
    socket.curveSecretKey = this.key.secretKey;
    socket.zapDomain = this.domain!;
    // Without a ZAP handler libzmq would admit any key: refuse instead.
    socket.zapEnforceDomain = true;
    watchServer(socket, this.log);
    return socket;
  }

  /** Makes a socket that connects a CURVE client of the run (before connect()). */
  client<S extends Socket>(socket: S): S {
    if (!this.key) return socket;
    this.assertOpen();
    Object.assign(socket, curveClientOptions(this.key));
    watchClient(socket, this.log);
    return socket;
  }

  /**
   * Stops admitting clients to this run's server sockets (close them first: a handshake after this
   * fails). The ZAP handler closes with the last RunSecurity of the process.
   */
  close(): void {
    if (this.closed || !this.domain) return;
    this.closed = true;
    unregisterDomain(this.domain);
  }

  private assertOpen(): void {
    if (this.closed) throw errors.invalidArgument('RunSecurity', 'is closed', 'configure sockets before close()');
  }
}
