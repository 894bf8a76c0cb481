import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { SkippedFile } from '../src/data/types.js';
import { errors, fromWire, SlferError } from '../src/errors.js';
import { variantParts } from '../src/model/config.js';
import { learningRate } from '../src/train/adam.js';
import { ConfusionMatrix, type EvalResult } from '../src/train/metrics.js';
import { appendMetrics, type EpochMetrics, type Report } from '../src/train/run-files.js';
import { finishRun, openRun, RunProgress, type RunOptions } from '../src/train/run-lifecycle.js';
import { prepareData, type TrainEvents } from '../src/train/trainer.js';
import { writeFileAtomic } from '../src/util/atomic.js';
import { compiledSibling } from '../src/util/compiled-path.js';
import { RING_EXEC_ARGV, ringProcessEnv } from './collective/process-setup.js';
import { RendezvousServer } from './collective/rendezvous.js';
import { summariseEpoch, type RankTiming } from './epoch-summary.js';
import { assignGpus, gpuEnv, queryGpus, type Gpu } from './gpus.js';
import { decodeWorkerMessage, encode, ENV, type CoordinatorMessage, type WorkerMessage } from './protocol.js';

/** RunOptions: the config, run folder and checkpoint to resume, as for `train`. */
export interface LaunchOptions extends RunOptions {
  /** CPU workers (single-node dev mode). Default 2 when `gpus` is not given. */
  workers?: number;
  /** One worker per GPU, each pinned to its device. */
  gpus?: number;
  transport?: 'tcp' | 'ipc';
  /** Gradient bucket size in MB (DDP's bucket_cap_mb; default 25). */
  bucketMb?: number;
  /** Half-precision gradients on the wire. */
  compression?: 'none' | 'fp16';
  /** TCP port of the coordinator's control socket (default: any free port). */
  port?: number;
  /** A worker silent for this long is declared lost (default 5 s). */
  heartbeatTimeoutMs?: number;
  signal?: AbortSignal;
  events?: LaunchEvents;
}

export type { RankTiming };

export interface LaunchEvents extends TrainEvents {
  /** After each epoch: every rank's time split. */
  timings?(t: RankTiming[]): void;
}

export interface LaunchResult {
  runDir: string;
  report: Report;
  metrics: EpochMetrics[];
  lastCheckpoint: string;
  bestCheckpoint: string;
  timings: RankTiming[];
  workers: number;
  backend: string;
}

interface WorkerProc {
  rank: number;
  child: ChildProcess;
  stderrTail: string[];
  lastBeat: number;
  exited: boolean;
}

/**
 * `slfer-dist launch`: Ray Train's shape with DDP's mechanics. The coordinator spawns one worker
 * process per device, runs the rendezvous that gives them their ring, then drives the run epoch by
 * epoch: workers train their shard with gradients averaged around the ring each step, average BN
 * statistics, evaluate their share of the test split and report; the coordinator checks that all
 * ranks hold the same weights, has rank 0 write the checkpoint and writes metrics. A worker that
 * exits or goes silent ends the run within seconds, with its last words, and no process survives.
 */
export async function launch(options: LaunchOptions = {}): Promise<LaunchResult> {
  const log = options.events?.log ?? (() => {});
  const gpus = options.gpus;
  const worldSize = gpus ?? options.workers ?? 2;
  if (!Number.isInteger(worldSize) || worldSize < 1) throw errors.invalidArgument('launch', `${worldSize} workers`, 'pass --workers N or --gpus N with N >= 1');
  let assigned: Gpu[] | undefined;
  if (gpus !== undefined) {
    const have = queryGpus();
    assigned = assignGpus(have.gpus, gpus, process.env.CUDA_VISIBLE_DEVICES, have.how);
  }

  const run = openRun(options, (c) => {
    // Dev mode trains on the CPU engine; threads split the cores between the workers' decoders.
    if (gpus === undefined && c.engine.backend === 'auto') c = { ...c, engine: { backend: 'wasm' } };
    if (c.data.threads === undefined) c = { ...c, data: { ...c.data, threads: Math.max(1, Math.floor(availableParallelism() / worldSize) - 1) } };
    return c;
  });
  const { config, runDir, resumed, startEpoch } = run;
  // Once, here: generates the synthetic set if needed (workers racing to write it would collide)
  // and stops on bad labels or missing masks before any worker starts.
  const { splits } = await prepareData(config, log);

  const server = new RendezvousServer({ worldSize, port: options.port });
  const endpoint = await server.bind();
  const procs: WorkerProc[] = [];
  let failRun!: (e: SlferError) => void;
  let failure: SlferError | undefined;
  const failed = new Promise<never>((_, reject) => {
    failRun = (e) => {
      if (failure) return;
      failure = e;
      reject(e);
    };
  });
  failed.catch(() => {});
  const orFail = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failed]);
  let stopping = false;
  const onAbort = () => failRun(errors.aborted('the launched run'));
  options.signal?.addEventListener('abort', onAbort);

  for (let rank = 0; rank < worldSize; rank++) {
    const env: NodeJS.ProcessEnv = {
      ...ringProcessEnv(),
      [ENV.rank]: String(rank),
      [ENV.worldSize]: String(worldSize),
      [ENV.coordinator]: endpoint,
      [ENV.runDir]: runDir,
      [ENV.transport]: options.transport ?? 'tcp',
      [ENV.bucketBytes]: String(Math.round((options.bucketMb ?? 25) * 1024 * 1024)),
      [ENV.compression]: options.compression ?? 'none',
    };
    if (resumed) env[ENV.resume] = resumed.path;
    // Pinning: each GPU engine sees only this rank's GPU (cluster/gpus.ts).
    if (assigned) Object.assign(env, gpuEnv(assigned[rank]));
    // CPU workers split the cores: each engine's native kernels (OpenMP) get their share, so N
    // workers do not oversubscribe the machine N times over. A user's OMP_NUM_THREADS wins.
    else if (process.env.OMP_NUM_THREADS === undefined) env.OMP_NUM_THREADS = String(Math.max(1, Math.floor(availableParallelism() / worldSize)));
    const child = fork(compiledSibling(import.meta.url, 'worker.js'), [], { env, execArgv: [...RING_EXEC_ARGV], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const proc: WorkerProc = { rank, child, stderrTail: [], lastBeat: Date.now(), exited: false };
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n').filter((l) => l.trim())) {
        proc.stderrTail.push(line);
        if (proc.stderrTail.length > 20) proc.stderrTail.shift();
        if (rank === 0 && /^\[rank 0\] /.test(line)) log(line.replace(/^\[rank 0\] /, ''));
      }
    };
    child.stderr!.on('data', keep);
    child.stdout!.on('data', keep);
    child.on('exit', (code, signal) => {
      proc.exited = true;
      if (!stopping || code !== 0) {
        if (!stopping) failRun(errors.clusterWorkerFailed(rank, signal ? `was killed by ${signal}` : `exited with code ${code}`, proc.stderrTail.slice(-10)));
      }
    });
    procs.push(proc);
  }

  const inbox = new Inbox();
  const logged = new Set<string>();
  const logOnce = (line: string) => {
    if (!logged.has(line)) log(`ignored: ${line}`);
    logged.add(line);
  };
  const watchdog = setInterval(() => {
    const now = Date.now();
    for (const p of procs) {
      const silent = now - p.lastBeat;
      if (!p.exited && silent > (options.heartbeatTimeoutMs ?? 5000)) failRun(errors.clusterHeartbeatLost(p.rank, silent / 1000));
    }
  }, 250);
  const send = async (rank: number, m: CoordinatorMessage) => {
    const reg = server.registrations[rank];
    if (reg) await server.router.send([reg.routingId, encode(m)]);
  };
  const broadcast = async (m: CoordinatorMessage) => {
    for (let r = 0; r < worldSize; r++) await send(r, m);
  };

  try {
    await orFail(server.waitForRanks());
    for (const p of procs) p.lastBeat = Date.now();
    void receiveLoop(server, inbox, {
      onMessage: (m) => {
        const p = procs[m.rank];
        if (p) p.lastBeat = Date.now();
        if (m.type === 'failed') {
          const e = fromWire(m.error, `worker rank ${m.rank}`);
          failRun(new SlferError(e.code, `worker rank ${m.rank}: ${e.message}`, e.hint));
        }
      },
      // A worker of this run that sends what the protocol does not know is a bug: stop, saying so.
      // Anything else on the port is not ours to obey: logged once, and the run goes on.
      onInvalid: (e, rank) => (rank === undefined ? logOnce(e.message) : failRun(e)),
    });
    const ready = await orFail(inbox.fromAll('ready', worldSize));
    const backend = ready[0].backend;
    log(`launched ${worldSize} workers on ${backend} (${ready[0].reason}); ${ready[0].parameters.toLocaleString('en-US')} parameters; ${ready[0].trainImages} train / ${ready[0].testImages} test images; ${ready[0].stepsPerEpoch} steps per epoch per worker`);
    // One line per rank: which GPU it was given and what its engine made of it (the adapter).
    if (assigned) for (const r of ready) log(`  rank ${r.rank}: GPU ${assigned[r.rank].index} ${assigned[r.rank].uuid} (${assigned[r.rank].name}) → ${r.backend}: ${r.reason}`);

    const { epochs, milestones, gamma, batchSize } = config.train;
    const progress = new RunProgress(run);
    const timings: RankTiming[] = [];
    const skipped: SkippedFile[] = [];
    let finalEval: EvalResult | undefined;
    const parts = variantParts(config.model.variant);
    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      const lr = learningRate(config.train.lr, epoch, milestones, gamma);
      options.events?.epochStart?.({ epoch: epoch + 1, epochs, steps: ready[0].stepsPerEpoch, lr });
      const t0 = Date.now();
      inbox.onProgress = (pr) => {
        // Global progress follows the slowest rank: a synchronous step is as fast as it is.
        const lag = inbox.progress.reduce((a, b) => (b.step < a.step ? b : a), pr);
        options.events?.step?.({ epoch: epoch + 1, step: lag.step, steps: lag.steps, loss: pr.loss, images: lag.step * batchSize * worldSize, seconds: (Date.now() - t0) / 1000 });
      };
      inbox.progress = [];
      await orFail(broadcast({ type: 'epoch', epoch }));
      const summary = summariseEpoch(epoch, await orFail(inbox.fromAll('epoch-done', worldSize)), lr, backend, parts);
      const m = summary.metrics;
      finalEval = summary.evaluation;
      skipped.push(...summary.skipped);
      timings.push(...summary.timings);
      const isBest = progress.improves(m);
      await orFail(send(0, { type: 'checkpoint', epoch: epoch + 1, testAccuracy: m.testAccuracy, best: isBest }));
      const [ck] = await orFail(inbox.fromRanks('checkpointed', [0]));
      progress.checkpointed(ck.path, isBest);
      appendMetrics(runDir, m);
      writeFileAtomic(join(runDir, 'timings.json'), JSON.stringify(timings, null, 1) + '\n');
      options.events?.epochEnd?.(m);
      options.events?.timings?.(summary.timings);
      log(`  checksum ${summary.checksum.slice(0, 16)} equal on all ${worldSize} ranks`);
    }
    const { report, metrics } = await finishRun(run, { evaluation: finalEval ?? new ConfusionMatrix().result(), skipped, backend, dataset: splits.name, checkpoint: progress.lastCheckpoint });
    stopping = true;
    await broadcast({ type: 'stop' });
    await waitForExit(procs, 10_000);
    return { runDir, report, metrics, lastCheckpoint: progress.lastCheckpoint, bestCheckpoint: progress.bestOrLast, timings, workers: worldSize, backend };
  } finally {
    stopping = true;
    clearInterval(watchdog);
    options.signal?.removeEventListener('abort', onAbort);
    await killAll(procs);
    server.close();
  }
}

type Of<T extends WorkerMessage['type']> = Extract<WorkerMessage, { type: T }>;

/** Messages from workers, waited for by type and rank. */
class Inbox {
  private readonly waiting: { type: WorkerMessage['type']; ranks: Set<number>; got: WorkerMessage[]; resolve: (m: WorkerMessage[]) => void }[] = [];
  private readonly early: WorkerMessage[] = [];
  progress: Of<'progress'>[] = [];
  onProgress: (p: Of<'progress'>) => void = () => {};

  deliver(m: WorkerMessage): void {
    if (m.type === 'progress') {
      this.progress[m.rank] = m;
      this.onProgress(m);
      return;
    }
    if (m.type === 'heartbeat' || m.type === 'failed') return;
    const w = this.waiting.find((x) => x.type === m.type && x.ranks.has(m.rank));
    if (!w) {
      this.early.push(m);
      return;
    }
    w.ranks.delete(m.rank);
    w.got.push(m);
    if (w.ranks.size === 0) {
      this.waiting.splice(this.waiting.indexOf(w), 1);
      w.resolve(w.got.sort((a, b) => a.rank - b.rank));
    }
  }

  fromAll<T extends WorkerMessage['type']>(type: T, worldSize: number): Promise<Of<T>[]> {
    return this.fromRanks(type, Array.from({ length: worldSize }, (_, i) => i));
  }

  fromRanks<T extends WorkerMessage['type']>(type: T, ranks: number[]): Promise<Of<T>[]> {
    return new Promise((resolve) => {
      const w = { type, ranks: new Set(ranks), got: [] as WorkerMessage[], resolve: resolve as (m: WorkerMessage[]) => void };
      this.waiting.push(w);
      for (const m of this.early.splice(0)) this.deliver(m);
    });
  }
}

interface ReceiveHandlers {
  onMessage(m: WorkerMessage): void;
  /** A frame that is not a worker message; `rank` when it came from a registered worker. */
  onInvalid(e: SlferError, rank: number | undefined): void;
}

async function receiveLoop(server: RendezvousServer, inbox: Inbox, on: ReceiveHandlers): Promise<void> {
  for (;;) {
    let frames: Buffer[];
    try {
      frames = await server.router.receive();
    } catch {
      return; // The router closed: the run is over.
    }
    const [routingId, payload] = frames;
    const rank = server.registrations.findIndex((r) => r !== undefined && payload !== undefined && Buffer.compare(r.routingId, routingId) === 0);
    const from = rank >= 0 ? `worker rank ${rank}` : 'an unregistered peer';
    let m: WorkerMessage;
    try {
      if (payload === undefined || frames.length !== 2) throw errors.controlMessageInvalid(from, `${frames.length} frames where one message has 2 (routing id, payload)`);
      m = decodeWorkerMessage(payload, from);
      if (rank >= 0 && m.rank !== rank) throw errors.controlMessageInvalid(from, `a message that claims to come from rank ${m.rank}`);
    } catch (e) {
      on.onInvalid(e as SlferError, rank >= 0 ? rank : undefined);
      continue;
    }
    if (rank < 0) {
      on.onInvalid(errors.controlMessageInvalid(from, `a "${m.type}" message from a peer that did not register`), undefined);
      continue;
    }
    on.onMessage(m);
    inbox.deliver(m);
  }
}

async function waitForExit(procs: WorkerProc[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (procs.some((p) => !p.exited) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

/** SIGTERM, then SIGKILL for whatever is still there after 3 s: no worker outlives the run. */
async function killAll(procs: WorkerProc[]): Promise<void> {
  for (const p of procs) if (!p.exited) p.child.kill('SIGTERM');
  await waitForExit(procs, 3000);
  for (const p of procs) if (!p.exited) p.child.kill('SIGKILL');
  await waitForExit(procs, 2000);
}
