import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import type { DatasetSplits, SkippedFile } from '../src/data/types.js';
import { errors, fromWire, isSlferError, SlferError } from '../src/errors.js';
import { variantParts } from '../src/model/config.js';
import { learningRate } from '../src/train/adam.js';
import { loadCheckpoint, parseCheckpointName } from '../src/train/checkpoint.js';
import { ConfusionMatrix, type EvalResult } from '../src/train/metrics.js';
import { appendMetrics, type EpochMetrics, type Report } from '../src/train/run-files.js';
import { finishRun, openRun, RunProgress, type OpenedRun, type RunOptions } from '../src/train/run-lifecycle.js';
import { prepareData, type TrainEvents } from '../src/train/trainer.js';
import { writeFileAtomic } from '../src/util/atomic.js';
import { compiledSibling } from '../src/util/compiled-path.js';
import { RING_EXEC_ARGV, ringProcessEnv } from './collective/process-setup.js';
import { RendezvousServer, type Registration } from './collective/rendezvous.js';
import { summariseEpoch, type RankTiming } from './epoch-summary.js';
import { assignGpus, gpuEnv, queryGpus, type Gpu } from './gpus.js';
import { AttemptLog, newestVerifiedCheckpoint } from './attempts.js';
import { failureError, FailurePolicy, type GroupFailure } from './failure-policy.js';
import { advertiseAddress } from './advertise.js';
import { Liveness } from './liveness.js';
import { resolvePlacement, type Placement } from './placement.js';
import { decodeWorkerMessage, encode, progressToWire, type CoordinatorMessage, type Welcome, type WorkerMessage } from './protocol.js';
import { runWorker } from './rank-worker.js';
import { RunSecurity } from './security/curve.js';
import { readRunKey } from './security/run-key.js';
import { WorkerGroup } from './worker-group.js';
import { workerSpecEnv, WorkerSpecSchema, type WorkerSpec } from './worker-spec.js';

/** RunOptions: the config, run folder and checkpoint to resume, as for `train`. */
export interface LaunchOptions extends RunOptions {
  /** CPU workers (single-node dev mode). Default 2 when `gpus` is not given. */
  workers?: number;
  /** One worker per GPU, each pinned to its device. */
  gpus?: number;
  /**
   * Where this process sits in a run that spans processes it did not fork (see placement.ts);
   * default: local, from `workers`/`gpus`. Must be one that hosts the coordinator.
   */
  placement?: Placement;
  /** The run these processes belong to: a process of another run is refused at the rendezvous. */
  runId?: string;
  /** The first attempt's number (an external launcher's restart count), so stale processes are told apart. */
  firstAttempt?: number;
  /** The run key file (`slfer-dist keygen`): every socket of the run, control and ring, uses CURVE. */
  authKey?: string;
  transport?: 'tcp' | 'ipc';
  /** Gradient bucket size in MB (DDP's bucket_cap_mb; default 25). */
  bucketMb?: number;
  /** Half-precision gradients on the wire. */
  compression?: 'none' | 'fp16';
  /** TCP port of the coordinator's control socket (default: any free port). */
  port?: number;
  /** A worker silent for this long is declared lost (default 5 s). */
  heartbeatTimeoutMs?: number;
  /**
   * New attempts after a lost worker (torchrun's --max-restarts; default 0): every worker is stopped
   * and the group starts again from the newest checkpoint whose checksum verifies.
   */
  maxRestarts?: number;
  signal?: AbortSignal;
  events?: LaunchEvents;
}

export type { RankTiming };

export interface LaunchEvents extends TrainEvents {
  /** After each epoch: every rank's time split. */
  timings?(t: RankTiming[]): void;
  /** An attempt's worker processes, by rank, once spawned. */
  workersStarted?(pids: number[], attempt: number): void;
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

/**
 * `slfer-dist launch`: Ray Train's shape with DDP's mechanics. The coordinator starts the workers
 * of this machine (one process per device; none when an external launcher made this process a
 * rank), runs the rendezvous that gives every rank its ring, then drives the run epoch by epoch:
 * workers train their shard with gradients averaged around the ring each step, average BN
 * statistics, evaluate their share of the test split and report; the coordinator checks that all
 * ranks hold the same weights, has rank 0 write the checkpoint and writes metrics. A worker that
 * exits or goes silent ends the attempt within seconds, with its last words, and no process survives.
 */
export async function launch(options: LaunchOptions = {}): Promise<LaunchResult> {
  const log = options.events?.log ?? (() => {});
  const placement = options.placement ?? resolvePlacement({ workers: options.workers, gpus: options.gpus, port: options.port }, {});
  if (!placement.coordinator) throw errors.internal(`launch() on a process that does not host the coordinator (${placement.mode})`);
  const { worldSize } = placement;
  const gpus = options.gpus;
  const forked = placement.mode === 'rank' ? [] : placement.localRanks;
  let assigned: Gpu[] | undefined;
  if (gpus !== undefined && forked.length > 0) {
    const have = queryGpus();
    assigned = assignGpus(have.gpus, forked.length, process.env.CUDA_VISIBLE_DEVICES, have.how);
  }

  const run = openRun(options, worldSize, (c) => {
    // Dev mode trains on the CPU engine; threads split the cores between the workers' decoders.
    if (gpus === undefined && c.engine.backend === 'auto') c = { ...c, engine: { backend: 'wasm' } };
    const onThisMachine = Math.max(1, placement.mode === 'rank' ? (placement.env.localWorldSize ?? 1) : placement.localRanks.length);
    if (c.data.threads === undefined) c = { ...c, data: { ...c.data, threads: Math.max(1, Math.floor(availableParallelism() / onThisMachine) - 1) } };
    return c;
  });
  const { config, runDir, resumed, startEpoch } = run;
  // Once, here: generates the synthetic set if needed (workers racing to write it would collide)
  // and stops on bad labels or missing masks before any worker starts.
  const { splits } = await prepareData(config, log);

  const advertise = placement.multiMachine ? await advertiseAddress(placement.host) : undefined;
  const policy = new FailurePolicy(options.maxRestarts ?? 0);
  const attempts = new AttemptLog(runDir, !!resumed);
  const timings: RankTiming[] = [];
  const skipped: SkippedFile[] = [];
  let resumeFrom = resumed?.path;
  let attemptStart = startEpoch;
  for (let restarts = 0; ; restarts++) {
    const attempt = attempts.begin(resumeFrom, attemptStart);
    // Timings of epochs this attempt redoes are replaced by its own.
    timings.splice(0, timings.length, ...timings.filter((t) => t.epoch <= attemptStart));
    try {
      const result = await runAttempt({
        options,
        log,
        placement,
        forked,
        advertise,
        assigned,
        run,
        splits,
        resumeFrom,
        attemptStart,
        timings,
        skipped,
        attempt,
        attemptNumber: (options.firstAttempt ?? 0) + restarts,
        // At once, before the cleanup: a launcher's SIGTERM (srun -K1, a pod's deletion) may end
        // this process during it, and the record of why must already be on disk.
        recordFailure: (f) => attempts.end({ outcome: 'failed', error: f.error, at: f.at }),
      });
      attempts.end({ outcome: 'succeeded' });
      return result;
    } catch (e) {
      if (!(e instanceof AttemptFailed)) {
        attempts.end({ outcome: 'failed', error: e });
        throw e;
      }
      const decision = policy.decide(e.failure, restarts);
      const again = attempts.failedAtSameStepAsLast(e.at);
      if (decision.action === 'stop' || again) {
        if (again && decision.action === 'restart') log(`not restarting: attempt ${attempt} failed at the same step as the one before (epoch ${e.at.epoch}, step ${e.at.step})`);
        throw decision.error;
      }
      const from = newestVerifiedCheckpoint(runDir) ?? { path: resumed?.path, epoch: startEpoch };
      log(`attempt ${attempt} failed: ${decision.error.message}`);
      log(`restarting every worker (restart ${restarts + 1} of ${options.maxRestarts}) from ${from.path ?? 'the start'}`);
      resumeFrom = from.path;
      attemptStart = from.epoch;
    }
  }
}

interface AttemptContext {
  options: LaunchOptions;
  log: (line: string) => void;
  placement: Placement;
  /** The ranks this process forks (all of them in local mode, its node's with agents, none as a launched rank). */
  forked: number[];
  /** This machine's address for peers on others (a world across machines), else undefined. */
  advertise: string | undefined;
  assigned: Gpu[] | undefined;
  run: OpenedRun;
  splits: DatasetSplits;
  /** The checkpoint rank 0 restores and broadcasts (undefined: a fresh start). */
  resumeFrom: string | undefined;
  attemptStart: number;
  timings: RankTiming[];
  skipped: SkippedFile[];
  /** 1-based, for attempts.json. */
  attempt: number;
  /** On the wire: registrations from any other attempt are refused. */
  attemptNumber: number;
  /** Called once, when the attempt's first failure happens. */
  recordFailure(f: AttemptFailed): void;
}

/** A failure of the worker group that the policy may answer with a restart. */
class AttemptFailed extends Error {
  constructor(
    readonly failure: GroupFailure,
    readonly error: SlferError,
    /** Where the group was when it failed: the epoch (1-based) and the slowest rank's step in it. */
    readonly at: { epoch: number; step: number },
  ) {
    super(error.message);
  }
}

/** What every rank is told at start: the same for ranks this process forks and ranks started elsewhere. */
export function workerSpecOf(
  rank: number,
  o: { placement: Placement; coordinator: string; runDir?: string; resume?: string; advertise?: string; runId: string; attempt: number; transport?: 'tcp' | 'ipc'; bucketMb?: number; compression?: 'none' | 'fp16'; authKey?: string },
): WorkerSpec {
  const multi = o.placement.multiMachine;
  return WorkerSpecSchema.parse({
    rank,
    worldSize: o.placement.worldSize,
    coordinator: o.coordinator,
    // Only rank 0 reads or writes the run folder.
    runDir: rank === 0 ? o.runDir : undefined,
    resume: rank === 0 ? o.resume : undefined,
    // Across machines: ipc between neighbours on one machine, tcp between machines.
    transport: multi ? 'auto' : (o.transport ?? 'tcp'),
    host: multi ? '0.0.0.0' : '127.0.0.1',
    advertise: o.advertise,
    runId: o.runId,
    attempt: o.attempt,
    bucketBytes: o.bucketMb === undefined ? undefined : Math.round(o.bucketMb * 1024 * 1024),
    compression: o.compression ?? 'none',
    authKey: o.authKey,
  });
}

/** One attempt: a rendezvous, a worker group, the epochs from `attemptStart` to the end. */
async function runAttempt(ctx: AttemptContext): Promise<LaunchResult> {
  const { options, log, placement, forked, assigned, run, splits, resumeFrom, attemptStart, timings, skipped } = ctx;
  const { worldSize } = placement;
  const { config, runDir } = run;
  const runId = options.runId ?? 'local';
  // JSON-clean: what crosses the wire is data, with no undefined fields to turn into nulls.
  const wireConfig = JSON.parse(JSON.stringify(config)) as unknown;
  // A mid-epoch checkpoint holds every rank's BN statistics and epoch sums; it is on this machine
  // only, so each rank is sent its own share (rank 0 reads the rest from the file itself).
  // Its name says which kind it is: an end-of-epoch one (the usual case) is not read here at all.
  const named = resumeFrom ? parseCheckpointName(basename(resumeFrom)) : undefined;
  const mayBeMidEpoch = resumeFrom !== undefined && (named === undefined || named.stepInEpoch !== undefined);
  const resumedState = mayBeMidEpoch ? (run.resumed?.path === resumeFrom ? run.resumed : loadCheckpoint(resumeFrom)) : undefined;
  const midEpoch = resumedState?.stepInEpoch !== undefined ? resumedState : undefined;
  if (midEpoch && midEpoch.ranks?.length !== worldSize) throw errors.checkpointWorldSize(resumeFrom!, midEpoch.epoch, midEpoch.stepInEpoch!, midEpoch.ranks?.length ?? 0, worldSize);
  const stale = new Set<string>();
  const refused = new Set<string>();
  // A stranger on the control port (a wrong key, plaintext, garbage) is logged once and ignored.
  const security = await RunSecurity.open(options.authKey ? readRunKey(options.authKey) : null, {
    onRefused: (line) => {
      if (!refused.has(line)) log(`refused: ${line}`);
      refused.add(line);
    },
  });
  const server = new RendezvousServer({
    security,
    worldSize,
    port: placement.port,
    host: placement.multiMachine ? '0.0.0.0' : '127.0.0.1',
    runId,
    attempt: ctx.attemptNumber,
    welcome: (rank) => ({ config: wireConfig, resume: midEpoch && { epoch: midEpoch.epoch, step: midEpoch.stepInEpoch!, progress: progressToWire(midEpoch.ranks![rank]) } }) satisfies Welcome,
    onStale: (line) => {
      if (!stale.has(line)) log(`refused: ${line}`);
      stale.add(line);
    },
  });
  const bound = await server.bind();
  // Workers reach the coordinator at rank 0's host as every node knows it, never at 0.0.0.0.
  const endpoint = placement.multiMachine ? bound.replace(/^tcp:\/\/[^:]+:/, `tcp://${ctx.advertise}:`) : bound;
  let failure: AttemptFailed | undefined;
  let rejectFailed!: (e: AttemptFailed) => void;
  const failed = new Promise<never>((_, reject) => (rejectFailed = reject));
  failed.catch(() => {});
  // Where the group is, for "the same step failed twice".
  let at = { epoch: attemptStart + 1, step: 0 };
  // The first failure ends the attempt; the caller's policy decides what follows.
  const fail = (f: GroupFailure) => {
    if (failure) return;
    failure = new AttemptFailed(f, failureError(f), at);
    ctx.recordFailure(failure);
    rejectFailed(failure);
  };
  const orFail = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failed]);
  const onAbort = () => fail({ kind: 'aborted', signal: typeof options.signal?.reason === 'string' ? options.signal.reason : undefined });
  options.signal?.addEventListener('abort', onAbort);

  const specOf = (rank: number) => workerSpecOf(rank, { placement, coordinator: endpoint, runDir, resume: resumeFrom, advertise: ctx.advertise, runId, attempt: ctx.attemptNumber, transport: options.transport, bucketMb: options.bucketMb, compression: options.compression, authKey: options.authKey });
  const specs = forked.map((rank, i) => {
    const env: NodeJS.ProcessEnv = { ...ringProcessEnv(), ...workerSpecEnv(specOf(rank)) };
    // Pinning: each GPU engine sees only this rank's GPU (cluster/gpus.ts).
    if (assigned) Object.assign(env, gpuEnv(assigned[i]));
    // CPU workers split the cores: each engine's native kernels (OpenMP) get their share, so N
    // workers do not oversubscribe the machine N times over. A user's OMP_NUM_THREADS wins.
    else if (process.env.OMP_NUM_THREADS === undefined) env.OMP_NUM_THREADS = String(Math.max(1, Math.floor(availableParallelism() / forked.length)));
    return { entry: compiledSibling(import.meta.url, 'worker.js'), env, execArgv: [...RING_EXEC_ARGV] };
  });
  const group = new WorkerGroup(specs, {
    output: 'tail',
    onLine: (i, line) => {
      if (forked[i] === 0 && /^\[rank 0\] /.test(line)) log(line.replace(/^\[rank 0\] /, ''));
    },
    onExit: (i, how, lastWords) => fail({ kind: 'exited', rank: forked[i], how, lastWords }),
    onSpawnError: (i, error) => fail({ kind: 'spawn-error', rank: forked[i], error }),
  });
  // Ranks elsewhere have no process here to watch: their heartbeats say they are alive.
  const liveness = new Liveness(worldSize, options.heartbeatTimeoutMs ?? 5000, (rank, seconds) => fail({ kind: 'silent', rank, seconds }));
  group.start();
  options.events?.workersStarted?.(group.pids, ctx.attempt);
  // Launched as rank 0 by an external launcher: this process is also rank 0's worker.
  const inProcess = placement.mode === 'rank' ? runWorker(specOf(0), { signal: options.signal }) : undefined;
  inProcess?.catch((e: unknown) => fail({ kind: 'reported', rank: 0, error: isSlferError(e) ? e : errors.internal(String(e)) }));

  const inbox = new Inbox(worldSize);
  inbox.onMidEpoch = (all) => {
    void send(0, { type: 'checkpoint-mid', epoch: all[0].epoch, step: all[0].step, ranks: all.map((m) => m.progress) }).catch((e: unknown) => fail({ kind: 'reported', rank: 0, error: errors.clusterTransport('send the mid-epoch checkpoint to', 'rank 0', e) }));
  };
  inbox.onMidCheckpointed = (m) => log(`  checkpoint ${m.path} (epoch ${m.epoch + 1}, after step ${m.step})`);
  const logged = new Set<string>();
  const logOnce = (line: string) => {
    if (!logged.has(line)) log(`ignored: ${line}`);
    logged.add(line);
  };
  const send = async (rank: number, m: CoordinatorMessage) => {
    const reg = server.registrations[rank];
    if (reg) await server.router.send([reg.routingId, encode(m)]);
  };
  const broadcast = async (m: CoordinatorMessage) => {
    for (let r = 0; r < worldSize; r++) await send(r, m);
  };

  try {
    // Ranks that never register are the rendezvous's to report (its timeout names them); from now
    // on each rank's heartbeat socket is known, and silence counts.
    await orFail(server.waitForRanks());
    liveness.start();
    void receiveLoop(server, inbox, {
      onMessage: (m) => {
        liveness.beat(m.rank);
        if (m.type === 'failed') fail({ kind: 'reported', rank: m.rank, error: fromWire(m.error, `worker rank ${m.rank}`) });
      },
      // A worker of this run that sends what the protocol does not know is a bug: stop, saying so.
      // Anything else on the port is not ours to obey: logged once, and the run goes on.
      onInvalid: (e, rank) => (rank === undefined ? logOnce(e.message) : fail({ kind: 'protocol', rank, error: e })),
    });
    const ready = await orFail(inbox.fromAll('ready', worldSize));
    group.healthy();
    liveness.reset();
    const backend = ready[0].backend;
    const regs = server.registrations as Registration[];
    const machines = new Set(regs.map((r) => r.machine ?? r.host));
    log(`launched ${worldSize} workers${machines.size > 1 ? ` on ${machines.size} machines` : ''} on ${backend} (${ready[0].reason}); ${ready[0].parameters.toLocaleString('en-US')} parameters; ${ready[0].trainImages} train / ${ready[0].testImages} test images; ${ready[0].stepsPerEpoch} steps per epoch per worker`);
    // Across machines, how each rank reaches the next: ipc on one machine, tcp between machines.
    if (machines.size > 1) {
      const via = (r: Registration, next: Registration) => (next.ipcEndpoint && next.machine !== undefined && next.machine === r.machine ? 'ipc' : 'tcp');
      log(`  ring: ${regs.map((r, i) => `${i} ─${via(r, regs[(i + 1) % worldSize])}→ `).join('')}0`);
    }
    // One line per rank: which GPU it was given and what its engine made of it (the adapter).
    if (assigned) forked.forEach((rank, i) => log(`  rank ${rank}: GPU ${assigned[i].index} ${assigned[i].uuid} (${assigned[i].name}) → ${ready[rank].backend}: ${ready[rank].reason}`));

    const { epochs, milestones, gamma, batchSize } = config.train;
    const progress = new RunProgress(runDir, attemptStart);
    let finalEval: EvalResult | undefined;
    const parts = variantParts(config.model.variant);
    for (let epoch = attemptStart; epoch < epochs; epoch++) {
      const lr = learningRate(config.train.lr, epoch, milestones, gamma);
      options.events?.epochStart?.({ epoch: epoch + 1, epochs, steps: ready[0].stepsPerEpoch, lr });
      const t0 = Date.now();
      inbox.onProgress = (pr) => {
        // Global progress follows the slowest rank: a synchronous step is as fast as it is.
        const lag = inbox.progress.reduce((a, b) => (b.step < a.step ? b : a), pr);
        at = { epoch: epoch + 1, step: lag.step };
        options.events?.step?.({ epoch: epoch + 1, step: lag.step, steps: lag.steps, loss: pr.loss, images: lag.step * batchSize * worldSize, seconds: (Date.now() - t0) / 1000 });
      };
      inbox.progress = [];
      at = { epoch: epoch + 1, step: 0 };
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
    liveness.stop();
    const stopped = group.stop(10_000);
    await broadcast({ type: 'stop' });
    await inProcess?.catch(() => {});
    // The run's files are complete by now; a worker that then exits unclean is worth a line, not a failed run.
    if ((await stopped) !== 'SUCCEEDED') log('warning: not every worker exited with code 0 after the run');
    return { runDir, report, metrics, lastCheckpoint: progress.lastCheckpoint, bestCheckpoint: progress.bestOrLast, timings, workers: worldSize, backend };
  } finally {
    liveness.stop();
    options.signal?.removeEventListener('abort', onAbort);
    await group.stop();
    // Closing the control socket is what tells workers elsewhere (and rank 0's own, in this
    // process) that the attempt is over: they stop within their heartbeat timeout.
    server.close();
    if (inProcess) await Promise.race([inProcess.catch(() => {}), new Promise((r) => setTimeout(r, 10_000).unref())]);
    security.close();
  }
}

type Of<T extends WorkerMessage['type']> = Extract<WorkerMessage, { type: T }>;

/** Messages from workers, waited for by type and rank. */
class Inbox {
  private readonly waiting: { type: WorkerMessage['type']; ranks: Set<number>; got: WorkerMessage[]; resolve: (m: WorkerMessage[]) => void }[] = [];
  private readonly early: WorkerMessage[] = [];
  progress: Of<'progress'>[] = [];
  onProgress: (p: Of<'progress'>) => void = () => {};
  /** Every rank's share at a mid-epoch checkpoint step, once all have arrived. */
  onMidEpoch: (all: Of<'mid-progress'>[]) => void = () => {};
  onMidCheckpointed: (m: Of<'mid-checkpointed'>) => void = () => {};
  private readonly midEpoch = new Map<string, Of<'mid-progress'>[]>();

  constructor(private readonly worldSize: number) {}

  deliver(m: WorkerMessage): void {
    if (m.type === 'progress') {
      this.progress[m.rank] = m;
      this.onProgress(m);
      return;
    }
    if (m.type === 'heartbeat' || m.type === 'failed') return;
    if (m.type === 'mid-progress') {
      const key = `${m.epoch}:${m.step}`;
      const got = this.midEpoch.get(key) ?? [];
      got[m.rank] = m;
      this.midEpoch.set(key, got);
      if (got.filter(Boolean).length === this.worldSize) {
        this.midEpoch.delete(key);
        this.onMidEpoch(got);
      }
      return;
    }
    if (m.type === 'mid-checkpointed') {
      this.onMidCheckpointed(m);
      return;
    }
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
    const rank = payload === undefined ? -1 : server.rankOf(routingId);
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
