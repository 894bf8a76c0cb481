import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dealer } from 'zeromq';
import { errors, isSlferError, SlferError } from '../../src/errors.js';
import type { RunSecurity } from '../security/curve.js';
import { addHalf, decodeHalf, encodeHalf } from './fp16.js';
import { Outbox, Tripwire } from './link.js';

/**
 * Ring collectives over ZeroMQ (the algorithm of Baidu's ring all-reduce, Horovod and NCCL rings).
 *
 * Wiring: rank r binds one Dealer that rank r-1 connects to, and connects one Dealer to rank r+1.
 * Data flows forward (r -> r+1); each collective ends with a tiny acknowledgement flowing backward
 * (r+1 -> r) that says "everything you sent me has arrived". Dealer-Dealer gives both directions on
 * one connection, per-pipe high-water marks that block instead of dropping, and reconnects.
 *
 * Wire format on the forward link, per message: two frames,
 *   [header: uint32 LE collective sequence number, uint32 LE message index] [payload: raw bytes]
 * and on the backward link one frame [uint32 sequence, 0xffffffff]. Payloads are sent without
 * copying straight out of the caller's buffer (zeromq.js zero-copies frames over 128 bytes), so a
 * region must not be written while it may still be in flight. Inside a collective every region is
 * rewritten only after data that causally depends on its arrival came back around the ring; the
 * final acknowledgement covers the rest, so when a collective resolves the caller owns its buffer.
 *
 * All-reduce is reduce-scatter then all-gather, fused into one pipeline: what a rank receives at
 * step s is exactly the region it forwards at step s+1, so each chunk is added (or copied) and
 * forwarded as soon as it lands, and sending, receiving and adding overlap across steps.
 */

export interface RingOptions {
  rank: number;
  worldSize: number;
  /**
   * 'tcp', 'ipc' (one machine only), or 'auto': bind both, and let each neighbour use ipc when it is
   * on the same machine and tcp when not (the rendezvous picks, from the ranks' machine ids).
   */
  transport: 'tcp' | 'ipc' | 'auto';
  /** TCP address to bind (default 127.0.0.1; 0.0.0.0 for a world that spans machines). */
  host?: string;
  /** The address peers reach this rank at, when `host` is a wildcard (SLFER_ADVERTISE_ADDR or a detected one). */
  advertise?: string;
  /** Folder for the IPC socket file (default: a fresh temp folder, removed on close). */
  ipcDir?: string;
  /** Pipeline chunk in bytes of float32 data; default: autoChunkElems() per collective. */
  chunkBytes?: number;
  /** Longest wait for a peer's next message, in ms (default 30 s). */
  timeoutMs?: number;
  /**
   * Run a minor GC after this many bytes received (default 8 MiB; 0: never), when the process
   * exposes `gc` (node --expose-gc; see process-setup.ts and collectGarbage() below).
   */
  gcEveryBytes?: number;
  /** Kernel socket buffer size (SO_SNDBUF/SO_RCVBUF) in bytes; -1 (default) keeps the OS's autotuning, which measured best. */
  socketBufferBytes?: number;
  /** CURVE on both links (cluster/security/curve.ts): the bound socket is the server, the connecting one the client. */
  security?: RunSecurity;
}

export interface AllReduceOptions {
  /** Divide the sum by worldSize. */
  average?: boolean;
  /** 'fp16': send half precision (half the bytes); the result is the fp16-rounded sum. */
  compression?: 'none' | 'fp16';
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_GC_EVERY_BYTES = 8 * 1024 * 1024;
export const DEFAULT_SOCKET_BUFFER_BYTES = -1;
/**
 * ZMTP heartbeats on every ring connection: a peer whose machine died or whose link went down is
 * noticed within HEARTBEAT_TIMEOUT_MS (+ an interval), not after a TCP timeout of minutes. Any
 * received traffic counts as a sign of life, so a busy link never trips them.
 */
export const HEARTBEAT_INTERVAL_MS = 1000;
export const HEARTBEAT_TIMEOUT_MS = 3000;
const ACK = 0xffffffff;
/** Enough queued messages that sends never block on a healthy ring (payloads are not copied). */
const HIGH_WATER_MARK = 100_000;
/** After a clean collective only an acknowledgement can be pending; don't hold exit longer. */
const LINGER_MS = 1000;

type State = 'new' | 'bound' | 'connected' | 'failed' | 'closed';

/**
 * The default pipeline chunk, in elements: about a sixteenth of a segment, within 256 KiB..4 MiB.
 * Measured on loopback with 55 MB: the best fixed chunk was 2 MiB for 2 ranks and 1 MiB for 4,
 * i.e. some 14 chunks per segment either way. Fewer, bigger chunks leave the pipeline idle while
 * it fills; smaller ones cost more wake-ups per byte than they gain in overlap.
 */
export function autoChunkElems(n: number, worldSize: number): number {
  const segmentBytes = (4 * n) / worldSize;
  const granule = 64 * 1024;
  const bytes = Math.min(4 << 20, Math.max(256 * 1024, Math.round(segmentBytes / 16 / granule) * granule));
  return bytes / 4;
}

/** Start offsets of the N segments of a buffer of n elements, plus n at the end. */
export function segmentBounds(n: number, parts: number): number[] {
  const base = Math.floor(n / parts);
  const extra = n % parts;
  const bounds = [0];
  for (let i = 0; i < parts; i++) bounds.push(bounds[i] + base + (i < extra ? 1 : 0));
  return bounds;
}

const mod = (a: number, n: number) => ((a % n) + n) % n;

/** V8's gc(), present when node runs with --expose-gc (RING_EXEC_ARGV in process-setup.ts). */
const exposedGc = (globalThis as { gc?: (opts?: { type: 'minor' | 'major' }) => void }).gc;

export class Ring {
  readonly rank: number;
  readonly worldSize: number;
  readonly transport: 'tcp' | 'ipc' | 'auto';
  /** Fixed pipeline chunk, or undefined for autoChunkElems(). */
  readonly chunkElems: number | undefined;
  readonly timeoutMs: number;
  private readonly gcEveryBytes: number;
  private readonly socketBufferBytes: number;
  private readonly host: string;
  private readonly advertise: string | undefined;
  private readonly security: RunSecurity | undefined;
  private readonly ipcDir: string | undefined;
  private ownedIpcDir: string | undefined;
  private ipcPath: string | undefined;
  /** Bound: data from rank-1 arrives here, acknowledgements go back to it. */
  private fromPrev: Dealer | undefined;
  /** Connected: data to rank+1 leaves here, its acknowledgements arrive here. */
  private toNext: Dealer | undefined;
  private state: State = 'new';
  private failure: unknown;
  /** The running collective's tripwire: a lost neighbour fails it at once. */
  private running: Tripwire | undefined;
  /** The ipc endpoint of the receiving socket, with transport 'auto'. */
  ipcEndpoint: string | undefined;
  private busy = false;
  private seq = 0;
  private receivedSinceGc = 0;
  /** fp16 wire image of the buffer; reused while the buffer length allows. */
  private staging = new Uint16Array(0);
  /** Aligned copy of a payload that ZeroMQ handed over at an odd address (small messages). */
  private scratch = new ArrayBuffer(0);

  constructor(opts: RingOptions) {
    const { rank, worldSize } = opts;
    if (!Number.isInteger(worldSize) || worldSize < 1) {
      throw errors.invalidArgument('ring worldSize', `${worldSize} is not a positive integer`, 'pass the number of ranks');
    }
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw errors.invalidArgument('ring rank', `${rank} is not in 0..${worldSize - 1}`, 'pass this process rank, 0-based');
    }
    if (opts.transport !== 'tcp' && opts.transport !== 'ipc' && opts.transport !== 'auto') {
      throw errors.invalidArgument('ring transport', `"${String(opts.transport)}" is not supported`, "use 'tcp', 'ipc' or 'auto'");
    }
    const chunkBytes = opts.chunkBytes;
    if (chunkBytes !== undefined && (!Number.isInteger(chunkBytes) || chunkBytes < 4)) {
      throw errors.invalidArgument('ring chunkBytes', `${chunkBytes} is not a whole number >= 4`, 'use at least 4 bytes; 256 KiB..4 MiB is sensible');
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
      throw errors.invalidArgument('ring timeoutMs', `${timeoutMs} is not a whole number of ms >= 1`, 'pass how long to wait for a peer (default 30000)');
    }
    this.rank = rank;
    this.worldSize = worldSize;
    this.transport = opts.transport;
    this.host = opts.host ?? '127.0.0.1';
    this.advertise = opts.advertise;
    this.security = opts.security;
    this.ipcDir = opts.ipcDir;
    this.chunkElems = chunkBytes === undefined ? undefined : Math.floor(chunkBytes / 4);
    this.timeoutMs = timeoutMs;
    this.gcEveryBytes = opts.gcEveryBytes ?? DEFAULT_GC_EVERY_BYTES;
    this.socketBufferBytes = opts.socketBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
  }

  private get prevRank(): number {
    return mod(this.rank - 1, this.worldSize);
  }
  private get nextRank(): number {
    return mod(this.rank + 1, this.worldSize);
  }

  private makeSocket(): Dealer {
    return new Dealer({
      linger: LINGER_MS,
      sendHighWaterMark: HIGH_WATER_MARK,
      receiveHighWaterMark: HIGH_WATER_MARK,
      sendTimeout: this.timeoutMs,
      receiveTimeout: this.timeoutMs,
      sendBufferSize: this.socketBufferBytes,
      receiveBufferSize: this.socketBufferBytes,
      heartbeatInterval: HEARTBEAT_INTERVAL_MS,
      heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
      heartbeatTimeToLive: HEARTBEAT_TIMEOUT_MS,
    });
  }

  /**
   * The next rank's connection dropping once the ring is up means it is lost: the ring fails, and
   * a collective waiting on it ends now instead of at its timeout (a dead machine sends nothing,
   * not even a TCP reset, so only the heartbeats above notice it). Only the connecting socket is
   * watched: the bound one also sees strangers come and go (a port scan, a client with a wrong
   * key), and its events do not say which connection dropped. The previous rank's loss reaches
   * this rank through its own neighbour or the coordinator (abort()).
   */
  private watch(sock: Dealer, peer: number): void {
    sock.events.on('disconnect', () => this.abort(errors.clusterPeerLost(this.rank, peer)));
  }

  /** Fails the ring now, and the collective running on it: the run this rank belongs to is over. */
  abort(e: SlferError): void {
    if (this.state !== 'connected') return;
    this.state = 'failed';
    this.failure = e;
    this.running?.trip(e);
  }

  /** Binds this rank's receiving socket; returns the endpoint other ranks connect to. */
  async bind(): Promise<string> {
    if (this.state !== 'new') throw errors.clusterRingUnusable(this.rank, `already ${this.state} (bind() is called once)`);
    const sock = this.makeSocket();
    this.security?.server(sock);
    const ipcAddress = () => {
      const dir = this.ipcDir ?? (this.ownedIpcDir = mkdtempSync(join(tmpdir(), 'slfer-ring-')));
      this.ipcPath = join(dir, `rank-${this.rank}-${process.pid}.sock`);
      return `ipc://${this.ipcPath}`;
    };
    const addresses = this.transport === 'ipc' ? [ipcAddress()] : [`tcp://${this.host}:*`];
    if (this.transport === 'auto') addresses.push(ipcAddress());
    const bound: string[] = [];
    for (const address of addresses) {
      try {
        await sock.bind(address);
      } catch (e) {
        sock.close();
        this.removeIpcFiles();
        throw errors.clusterTransport('bind', address, e);
      }
      bound.push(sock.lastEndpoint ?? address);
    }
    this.fromPrev = sock;
    this.state = 'bound';
    if (this.transport === 'auto') this.ipcEndpoint = bound[1];
    // A wildcard bind is reachable at the advertised address, never at the literal 0.0.0.0.
    return this.advertise && bound[0].startsWith('tcp://') ? bound[0].replace(/^tcp:\/\/[^:]+:/, `tcp://${this.advertise}:`) : bound[0];
  }

  /** Connects to the next rank, given every rank's endpoint in rank order (from rendezvous). */
  async connect(endpoints: string[]): Promise<void> {
    if (this.state !== 'bound') throw errors.clusterRingUnusable(this.rank, `${this.state}; connect() follows bind() once`);
    if (endpoints.length !== this.worldSize) {
      throw errors.invalidArgument('ring endpoints', `${endpoints.length} given for ${this.worldSize} ranks`, 'pass every rank endpoint, in rank order');
    }
    const sock = this.makeSocket();
    this.security?.client(sock);
    const target = endpoints[this.nextRank];
    try {
      sock.connect(target);
    } catch (e) {
      sock.close();
      throw errors.clusterTransport('connect to', target, e);
    }
    this.toNext = sock;
    this.state = 'connected';
    this.watch(sock, this.nextRank);
  }

  /**
   * In-place sum over all ranks. Every rank ends with bitwise identical values: each segment is
   * reduced (and averaged, and rounded to fp16) once, by its owner, and then copied around.
   */
  async allReduce(data: Float32Array, opts: AllReduceOptions = {}): Promise<void> {
    const fp16 = (opts.compression ?? 'none') === 'fp16';
    if (!fp16 && opts.compression !== undefined && opts.compression !== 'none') {
      throw errors.invalidArgument('allReduce compression', `"${String(opts.compression)}" is not supported`, "use 'none' or 'fp16'");
    }
    await this.collective(async (link) => {
      const N = this.worldSize;
      const r = this.rank;
      const n = data.length;
      const chunk = this.chunkElems ?? autoChunkElems(n, N);
      const bounds = segmentBounds(n, N);
      const average = opts.average === true;
      if (fp16 && this.staging.length < n) this.staging = new Uint16Array(n);
      const staging = this.staging;
      const wireBytes = fp16 ? 2 : 4;

      const sendRegion = (lo: number, hi: number) => {
        if (fp16) {
          const h = staging.subarray(lo, hi);
          encodeHalf(data.subarray(lo, hi), h);
          link.send(h);
        } else {
          link.send(data.subarray(lo, hi));
        }
      };

      // Step 0: our own segment goes out whole; everything after is driven by arrivals.
      for (let lo = bounds[r]; lo < bounds[r + 1]; lo += chunk) sendRegion(lo, Math.min(lo + chunk, bounds[r + 1]));

      const lastStep = 2 * N - 3;
      for (let s = 0; s <= lastStep; s++) {
        const seg = mod(r - s - 1, N);
        const a = bounds[seg];
        const b = bounds[seg + 1];
        for (let lo = a; lo < b; lo += chunk) {
          const hi = Math.min(lo + chunk, b);
          const msg = await link.receive((hi - lo) * wireBytes);
          const dst = data.subarray(lo, hi);
          if (s < N - 1) {
            // reduce-scatter: add our contribution, then pass the partial sum on
            if (fp16) addHalf(this.view16(msg), dst);
            else addFloats(this.view32(msg), dst);
            if (s < N - 2) {
              sendRegion(lo, hi);
            } else {
              // we own this segment: finish it once, here, for everyone
              if (average) for (let i = 0; i < dst.length; i++) dst[i] /= N;
              if (fp16) {
                const h = staging.subarray(lo, hi);
                encodeHalf(dst, h);
                decodeHalf(h, dst);
                link.send(h);
              } else {
                link.send(dst);
              }
            }
          } else {
            // all-gather: take our copy, then pass it on from our buffer, so that the received
            // buffer dies young (one that ZeroMQ still holds while sending survives into V8's
            // old generation, and only a full GC would free it)
            if (fp16) {
              const h = staging.subarray(lo, hi);
              h.set(this.view16(msg));
              decodeHalf(h, dst);
              if (s < lastStep) link.send(h);
            } else {
              dst.set(this.view32(msg));
              if (s < lastStep) link.send(dst);
            }
          }
        }
      }
    });
  }

  /** Copies root's buffer into every rank's buffer (a chunked pipeline along the ring). */
  async broadcast(data: Float32Array, root: number): Promise<void> {
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) {
      throw errors.invalidArgument('broadcast root', `${root} is not in 0..${this.worldSize - 1}`, 'pass the rank that holds the data');
    }
    await this.collective(async (link) => {
      const n = data.length;
      const chunk = this.chunkElems ?? autoChunkElems(n, 2); // a relay, not a reduction: 1/32 of the buffer
      const pos = mod(this.rank - root, this.worldSize);
      const last = pos === this.worldSize - 1;
      for (let lo = 0; lo < n; lo += chunk) {
        const hi = Math.min(lo + chunk, n);
        if (pos === 0) {
          link.send(data.subarray(lo, hi));
          continue;
        }
        const msg = await link.receive((hi - lo) * 4);
        const dst = data.subarray(lo, hi);
        dst.set(this.view32(msg));
        if (!last) link.send(dst); // from our copy: see all-gather in allReduce()
      }
    });
  }

  /** Returns once every rank has entered the barrier. */
  async barrier(): Promise<void> {
    await this.allReduce(new Float32Array(1));
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const failed = this.state === 'failed';
    this.state = 'closed';
    for (const sock of [this.toNext, this.fromPrev]) {
      if (!sock || sock.closed) continue;
      if (failed) sock.linger = 0; // nothing worth delivering to a broken ring
      sock.close();
    }
    this.toNext = this.fromPrev = undefined;
    this.removeIpcFiles();
  }

  private removeIpcFiles(): void {
    if (this.ipcPath) rmSync(this.ipcPath, { force: true });
    if (this.ownedIpcDir) rmSync(this.ownedIpcDir, { recursive: true, force: true });
    this.ipcPath = this.ownedIpcDir = undefined;
  }

  /**
   * Runs one collective: numbers it, gives it send/receive helpers that check the wire header,
   * ends it with the acknowledgement exchange, and marks the ring failed if anything goes wrong
   * (peers are then out of step, so no later collective could be trusted).
   */
  private async collective(body: (link: CollectiveLink) => Promise<void>): Promise<void> {
    if (this.state === 'failed') throw errors.clusterRingUnusable(this.rank, 'failed', this.failure);
    if (this.state === 'closed') throw errors.clusterRingUnusable(this.rank, 'closed');
    if (this.worldSize === 1) return; // alone: the sum, the average and the broadcast are the buffer itself
    if (this.state !== 'connected') throw errors.clusterRingUnusable(this.rank, 'not connected yet');
    if (this.busy) {
      throw errors.invalidArgument('ring collective', 'another collective is still running on this ring', 'await each collective before starting the next');
    }
    this.busy = true;
    const seq = (this.seq = (this.seq + 1) >>> 0);
    const fromPrev = this.fromPrev!;
    const toNext = this.toNext!;
    const abort = new Tripwire();
    this.running = abort;
    const outbox = new Outbox(toNext, (e) => abort.trip(this.translate(e, this.nextRank, 'room to send (its queue stayed full)')));
    let sent = 0;
    let received = 0;
    const header = (i: number) => {
      const h = Buffer.allocUnsafe(8);
      h.writeUInt32LE(seq, 0);
      h.writeUInt32LE(i, 4);
      return h;
    };
    const link: CollectiveLink = {
      send: (payload) => outbox.push([header(sent++), payload]),
      receive: async (bytes) => {
        const expected = received++;
        const parts = await this.guard(() => fromPrev.receive(), abort, this.prevRank, 'data');
        this.checkHeader(parts, seq, expected, this.prevRank);
        if (parts.length !== 2 || parts[1].byteLength !== bytes) {
          throw errors.clusterProtocol(this.rank, this.prevRank, `message ${expected} has ${parts[1]?.byteLength ?? 0} bytes, expected ${bytes}`);
        }
        this.collectGarbage(bytes);
        return parts[1];
      },
    };
    try {
      await body(link);
      // Tell rank-1 that all its data is here, then wait for rank+1 to say the same of ours.
      const ack = Buffer.allocUnsafe(8);
      ack.writeUInt32LE(seq, 0);
      ack.writeUInt32LE(ACK, 4);
      await this.guard(() => fromPrev.send(ack), abort, this.prevRank, 'room to acknowledge');
      const parts = await this.guard(() => toNext.receive(), abort, this.nextRank, 'acknowledgement');
      this.checkHeader(parts, seq, ACK, this.nextRank);
      await this.guard(() => outbox.drained(), abort, this.nextRank, 'room to send');
    } catch (e) {
      this.state = 'failed';
      this.failure = e;
      throw e;
    } finally {
      this.busy = false;
      this.running = undefined;
    }
  }

  private checkHeader(parts: Buffer[], seq: number, index: number, peer: number): void {
    const h = parts[0];
    if (!h || h.byteLength !== 8) throw errors.clusterProtocol(this.rank, peer, 'malformed header');
    const gotSeq = h.readUInt32LE(0);
    const gotIndex = h.readUInt32LE(4);
    if (gotSeq !== seq || gotIndex !== index) {
      const what = (i: number) => (i === ACK ? 'acknowledgement' : `message ${i}`);
      throw errors.clusterProtocol(this.rank, peer, `got ${what(gotIndex)} of collective #${gotSeq}, expected ${what(index)} of collective #${seq}`);
    }
  }

  /** Awaits a socket operation, failing early if the collective was aborted; maps errors to SlferErrors. */
  private async guard<T>(op: () => Promise<T>, abort: Tripwire, peer: number, waitingFor: string): Promise<T> {
    try {
      return await abort.watch(op());
    } catch (e) {
      throw this.translate(e, peer, waitingFor);
    }
  }

  private translate(e: unknown, peer: number, waitingFor: string): SlferError {
    if (isSlferError(e)) return e;
    if (this.state === 'closed') return errors.clusterRingUnusable(this.rank, 'closed', e); // close() cut a pending operation short
    if ((e as { code?: string }).code === 'EAGAIN') return errors.clusterPeerTimeout(this.rank, peer, waitingFor, this.timeoutMs, e);
    return errors.clusterRingUnusable(this.rank, `broken (${(e as Error).message ?? e})`, e);
  }

  /**
   * Every payload arrives in memory that libzmq allocated and that is freed only when V8 collects
   * the Buffer wrapping it. Left to V8, a whole collective's worth piles up between collections
   * and malloc keeps touching new pages. A minor GC every few MB (a fraction of a millisecond:
   * only young objects are visited, and received buffers die young) lets the same few MB of warm
   * memory serve the next messages. Pairs with the malloc settings of process-setup.ts.
   */
  private collectGarbage(bytes: number): void {
    if (this.gcEveryBytes <= 0 || !exposedGc) return;
    this.receivedSinceGc += bytes;
    if (this.receivedSinceGc < this.gcEveryBytes) return;
    this.receivedSinceGc = 0;
    exposedGc({ type: 'minor' });
  }

  private view32(buf: Buffer): Float32Array {
    if (buf.byteOffset % 4 === 0) return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    return new Float32Array(this.aligned(buf), 0, buf.byteLength / 4);
  }

  private view16(buf: Buffer): Uint16Array {
    if (buf.byteOffset % 2 === 0) return new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength / 2);
    return new Uint16Array(this.aligned(buf), 0, buf.byteLength / 2);
  }

  private aligned(buf: Buffer): ArrayBuffer {
    if (this.scratch.byteLength < buf.byteLength) this.scratch = new ArrayBuffer(buf.byteLength);
    new Uint8Array(this.scratch).set(buf);
    return this.scratch;
  }
}

interface CollectiveLink {
  /** Queues one payload to rank+1 (not copied: the region must stay untouched until acknowledged). */
  send(payload: ArrayBufferView): void;
  /** The next payload from rank-1, checked to be the expected message of this collective. */
  receive(bytes: number): Promise<Buffer>;
}

/**
 * dst[i] += src[i]: the reduction. V8 does not vectorise; unrolling by 8 still cuts the loop
 * overhead (1.25 -> 0.75 ns per element here).
 */
function addFloats(src: Float32Array, dst: Float32Array): void {
  const n = dst.length;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    dst[i] += src[i];
    dst[i + 1] += src[i + 1];
    dst[i + 2] += src[i + 2];
    dst[i + 3] += src[i + 3];
    dst[i + 4] += src[i + 4];
    dst[i + 5] += src[i + 5];
    dst[i + 6] += src[i + 6];
    dst[i + 7] += src[i + 7];
  }
  for (; i < n; i++) dst[i] += src[i];
}
