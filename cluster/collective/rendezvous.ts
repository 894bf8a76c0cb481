import { hostname } from 'node:os';
import { pack, unpack } from 'msgpackr';
import { Dealer, Router } from 'zeromq';
import { errors, fromWire, SlferError, toWire, type WireError } from '../../src/errors.js';
import type { RunSecurity } from '../security/curve.js';

/**
 * Rendezvous: how N workers learn each other's ring endpoints. The coordinator binds a Router;
 * each worker binds its ring socket first, then registers through a Dealer; once every rank has
 * registered, the coordinator answers each with the endpoints of all ranks in rank order.
 *
 * Control messages are one frame each, a msgpackr-encoded object with a `type` field:
 *   worker -> coordinator  { type: 'register', rank, worldSize, endpoint, pid, host }
 *   coordinator -> worker  { type: 'ring', endpoints: string[] }         (index = rank)
 *   coordinator -> worker  { type: 'error', error: WireError }           (a SlferError, rethrown)
 * (Router frames are [routing id, payload]; a Dealer sends and receives just [payload].)
 * The Router stays open after the rendezvous, with no receive pending, and `registrations` holds
 * each rank's routing id: a coordinator can keep using it as its control channel with more types.
 */

export interface Registration {
  rank: number;
  worldSize: number;
  endpoint: string;
  /** The same socket's ipc endpoint, for a neighbour on the same machine (see `machine`). */
  ipcEndpoint?: string;
  /** Which machine the rank runs on (ranks with equal ids may talk over ipc). */
  machine?: string;
  pid: number;
  host: string;
  /** The Router's routing id for this worker's Dealer: `router.send([routingId, payload])`. */
  routingId: Buffer;
  /** The routing id of the worker's heartbeat socket (a second Dealer, on a thread of its own). */
  heartbeatId?: Buffer;
}

export interface RegisterMessage {
  type: 'register';
  rank: number;
  worldSize: number;
  endpoint: string;
  ipcEndpoint?: string;
  machine?: string;
  pid: number;
  host: string;
  /** The run and attempt the worker belongs to: a process left over from another one is refused. */
  runId?: string;
  attempt?: number;
  heartbeatId?: string;
}
export interface RingMessage {
  type: 'ring';
  /** The endpoint to reach each rank at, from the receiver's side (ipc where on the same machine), by rank. */
  endpoints: string[];
  /** What the coordinator gives every rank with its ring (e.g. the run's config). */
  welcome?: unknown;
}
export interface ErrorMessage {
  type: 'error';
  error: WireError;
}

export const DEFAULT_RENDEZVOUS_TIMEOUT_MS = 60_000;

export interface RendezvousServerOptions {
  worldSize: number;
  /** TCP port to bind; 0 (default) picks a free one. */
  port?: number;
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** How long waitForRanks() waits for all ranks (default 60 s). */
  timeoutMs?: number;
  /** The run and attempt registrations must name (when set); others are refused and reported to onStale. */
  runId?: string;
  attempt?: number;
  /** Sent to each rank with its ring. */
  welcome?: (rank: number) => unknown;
  /** A registration from another run or attempt, refused (the rendezvous goes on). */
  onStale?(line: string): void;
  /** CURVE for the Router (cluster/security/curve.ts); set before it binds. */
  security?: RunSecurity;
}

export class RendezvousServer {
  readonly worldSize: number;
  readonly router: Router;
  private readonly port: number;
  private readonly host: string;
  private readonly timeoutMs: number;
  private readonly opts: RendezvousServerOptions;
  private bound: string | undefined;
  private byRank: Array<Registration | undefined>;
  private waiting: Promise<Registration[]> | undefined;

  constructor(opts: RendezvousServerOptions) {
    if (!Number.isInteger(opts.worldSize) || opts.worldSize < 1) {
      throw errors.invalidArgument('rendezvous worldSize', `${opts.worldSize} is not a positive integer`, 'pass the number of workers');
    }
    this.worldSize = opts.worldSize;
    this.port = opts.port ?? 0;
    this.host = opts.host ?? '127.0.0.1';
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS;
    this.opts = opts;
    this.byRank = new Array(this.worldSize).fill(undefined);
    this.router = new Router({ linger: 1000 });
    opts.security?.server(this.router);
  }

  /** Binds the Router; returns the endpoint workers register at (also `endpoint` afterwards). */
  async bind(): Promise<string> {
    const address = `tcp://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port === 0 ? '*' : this.port}`;
    try {
      await this.router.bind(address);
    } catch (e) {
      throw errors.clusterTransport('bind the rendezvous server at', address, e);
    }
    this.bound = this.router.lastEndpoint ?? address;
    return this.bound;
  }

  get endpoint(): string {
    if (!this.bound) throw errors.invalidArgument('rendezvous endpoint', 'the server is not bound yet', 'await bind() first');
    return this.bound;
  }

  /** Registrations so far, by rank (complete once waitForRanks() has resolved). */
  get registrations(): ReadonlyArray<Registration | undefined> {
    return this.byRank;
  }

  /**
   * Waits until every rank has registered, answers each with the ring order, and resolves with the
   * registrations by rank. Rejects on a duplicate or out-of-range rank or a different worldSize
   * (SLFER_CLUSTER_RANK_INVALID), or after timeoutMs naming the ranks still missing
   * (SLFER_CLUSTER_RENDEZVOUS_TIMEOUT); registered workers are then sent the same error.
   */
  waitForRanks(): Promise<Registration[]> {
    this.waiting ??= this.gather();
    return this.waiting;
  }

  private async gather(): Promise<Registration[]> {
    if (!this.bound) throw errors.invalidArgument('rendezvous', 'waitForRanks() before bind()', 'await bind() first');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const missing = this.byRank.flatMap((r, i) => (r ? [] : [i]));
        reject(errors.clusterRendezvousTimeout(`rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${this.worldSize} never registered`, this.timeoutMs));
      }, this.timeoutMs);
    });
    try {
      let count = 0;
      while (count < this.worldSize) {
        const [routingId, payload] = await Promise.race([this.router.receive(), timeout]);
        const reg = this.parse(routingId, payload);
        if (!reg) continue;
        this.byRank[reg.rank] = reg;
        count++;
      }
      const all = this.byRank as Registration[];
      for (const r of all) {
        // ipc to a neighbour on the same machine (no TCP stack in between), tcp to any other.
        const endpoints = all.map((o) => (o.ipcEndpoint && o.machine !== undefined && o.machine === r.machine ? o.ipcEndpoint : o.endpoint));
        await this.router.send([r.routingId, pack({ type: 'ring', endpoints, welcome: this.opts.welcome?.(r.rank) } satisfies RingMessage)]);
      }
      return all;
    } catch (e) {
      const err = e instanceof SlferError ? e : errors.clusterTransport('receive on', this.bound!, e);
      await this.tellAll(err);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A valid registration, or undefined for noise; throws (after answering the sender) on a bad rank. */
  private parse(routingId: Buffer, payload: Buffer | undefined): Registration | undefined {
    let msg: Partial<RegisterMessage>;
    try {
      msg = payload ? (unpack(payload) as Partial<RegisterMessage>) : {};
    } catch {
      return undefined; // not ours: ignore rather than let a stray client break the job
    }
    if (msg?.type !== 'register') return undefined;
    const { rank, worldSize, endpoint, pid, host } = msg;
    // A process of another run or an earlier attempt (still alive, or its late message) is told so
    // and ignored: it must neither join this ring nor break its rendezvous.
    const stale = this.staleness(msg);
    if (stale) {
      this.opts.onStale?.(`pid ${String(pid)} on ${String(host)}: ${stale}`);
      void this.router.send([routingId, encodeError(errors.clusterRankInvalid(stale))]).catch(() => {});
      return undefined;
    }
    let problem: string | undefined;
    if (!Number.isInteger(rank) || typeof endpoint !== 'string') problem = `malformed registration ${JSON.stringify(msg)}`;
    else if (worldSize !== this.worldSize) problem = `rank ${rank} expects worldSize ${worldSize}, the coordinator has ${this.worldSize}`;
    else if (rank! < 0 || rank! >= this.worldSize) problem = `rank ${rank} is out of range 0..${this.worldSize - 1}`;
    else if (this.byRank[rank!]) {
      const first = this.byRank[rank!]!;
      problem = `rank ${rank} registered twice (pid ${first.pid} on ${first.host}, then pid ${pid} on ${host})`;
    }
    if (problem) {
      const err = errors.clusterRankInvalid(problem);
      void this.router.send([routingId, encodeError(err)]).catch(() => {});
      throw err;
    }
    const optional = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);
    const heartbeatId = optional(msg.heartbeatId);
    return {
      rank: rank!,
      worldSize: worldSize!,
      endpoint: endpoint!,
      ipcEndpoint: optional(msg.ipcEndpoint),
      machine: optional(msg.machine),
      pid: Number(pid),
      host: String(host),
      routingId,
      heartbeatId: heartbeatId === undefined ? undefined : Buffer.from(heartbeatId),
    };
  }

  /** Why a registration belongs to another run or attempt, or undefined when it is this one's. */
  private staleness(msg: Partial<RegisterMessage>): string | undefined {
    const { runId, attempt } = this.opts;
    if (runId !== undefined && msg.runId !== runId) return `registration for run "${String(msg.runId)}", this is run "${runId}"`;
    if (attempt !== undefined && msg.attempt !== attempt) return `registration from attempt ${String(msg.attempt)}, this is attempt ${attempt}: a process left over from an earlier attempt`;
    return undefined;
  }

  /** The rank whose control or heartbeat socket has this routing id, or -1. */
  rankOf(routingId: Buffer): number {
    return this.byRank.findIndex((r) => r !== undefined && (r.routingId.equals(routingId) || (r.heartbeatId !== undefined && r.heartbeatId.equals(routingId))));
  }

  private async tellAll(err: SlferError): Promise<void> {
    const payload = encodeError(err);
    for (const r of this.byRank) if (r) await this.router.send([r.routingId, payload]).catch(() => {});
  }

  close(): void {
    if (!this.router.closed) this.router.close();
  }
}

function encodeError(err: SlferError): Buffer {
  return pack({ type: 'error', error: toWire(err) } satisfies ErrorMessage);
}

export interface RendezvousOptions {
  rank: number;
  worldSize: number;
  /** This rank's ring endpoint (from Ring.bind()). */
  endpoint: string;
  timeoutMs?: number;
  pid?: number;
  host?: string;
  /** A Dealer to register through and keep (as a control channel); by default one is made and closed. */
  dealer?: Dealer;
  ipcEndpoint?: string;
  machine?: string;
  runId?: string;
  attempt?: number;
  heartbeatId?: string;
}

export interface RendezvousResult {
  endpoints: string[];
  welcome: unknown;
}

/** Worker side: registers with the coordinator and returns every rank's endpoint, in rank order. */
export async function rendezvous(coordinatorEndpoint: string, opts: RendezvousOptions): Promise<string[]> {
  return (await joinRendezvous(coordinatorEndpoint, opts)).endpoints;
}

/** rendezvous(), plus what the coordinator sent with the ring (RendezvousServerOptions.welcome). */
export async function joinRendezvous(coordinatorEndpoint: string, opts: RendezvousOptions): Promise<RendezvousResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS;
  const owned = !opts.dealer;
  const dealer = opts.dealer ?? new Dealer({ linger: 0 });
  try {
    if (owned) dealer.connect(coordinatorEndpoint);
    dealer.sendTimeout = timeoutMs;
    dealer.receiveTimeout = timeoutMs;
    const register: RegisterMessage = {
      type: 'register',
      rank: opts.rank,
      worldSize: opts.worldSize,
      endpoint: opts.endpoint,
      ipcEndpoint: opts.ipcEndpoint,
      machine: opts.machine,
      pid: opts.pid ?? process.pid,
      host: opts.host ?? hostname(),
      runId: opts.runId,
      attempt: opts.attempt,
      heartbeatId: opts.heartbeatId,
    };
    let reply: Partial<RingMessage | ErrorMessage>;
    try {
      await dealer.send(pack(register));
      const [payload] = await dealer.receive();
      reply = unpack(payload) as Partial<RingMessage | ErrorMessage>;
    } catch (e) {
      if ((e as { code?: string }).code === 'EAGAIN') {
        throw errors.clusterRendezvousTimeout(`rank ${opts.rank}: the coordinator at ${coordinatorEndpoint} did not answer`, timeoutMs);
      }
      throw errors.clusterTransport('register with the coordinator at', coordinatorEndpoint, e);
    }
    if (reply.type === 'error') throw fromWire(reply.error, 'the coordinator');
    if (reply.type !== 'ring' || !Array.isArray(reply.endpoints) || reply.endpoints.length !== opts.worldSize) {
      throw errors.clusterRankInvalid(`rank ${opts.rank}: unexpected answer from the coordinator: ${JSON.stringify(reply)}`);
    }
    return { endpoints: reply.endpoints, welcome: reply.welcome };
  } finally {
    if (owned) dealer.close();
  }
}
