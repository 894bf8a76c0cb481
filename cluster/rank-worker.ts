import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Dealer } from 'zeromq';
import { resolveConfig } from '../src/config.js';
import { selectBackend } from '../src/engine/backend.js';
import { errors, isSlferError, toWire, type SlferError } from '../src/errors.js';
import { loadCheckpoint, saveCheckpoint } from '../src/train/checkpoint.js';
import { RUN_FILES } from '../src/train/run-files.js';
import { formatPretrained, loadPretrained } from '../src/train/pretrained.js';
import { TrainingSession } from '../src/train/session.js';
import { prepareData, specsOf } from '../src/train/trainer.js';
import { compiledSibling } from '../src/util/compiled-path.js';
import { Tripwire } from './collective/link.js';
import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS, Ring } from './collective/ring.js';
import { joinRendezvous } from './collective/rendezvous.js';
import { RingGradientReducer } from './gradient-reducer.js';
import { RunSecurity } from './security/curve.js';
import { readRunKey } from './security/run-key.js';
import { machineId } from './machine-id.js';
import { decodeCoordinatorMessage, decodeWelcome, encode, progressFromWire, progressToWire, type CoordinatorMessage, type WorkerMessage } from './protocol.js';
import type { WorkerSpec } from './worker-spec.js';

/**
 * One rank of `slfer-dist launch`: the single-process trainer's TrainingSession on this rank's
 * shard, with gradients averaged over the ring every step. It does what the coordinator says, one
 * command at a time (epoch, checkpoint, stop), and reports back on the control channel. It runs in
 * a process forked by launch (cluster/worker.ts), or inside the `slfer-dist launch` that an external
 * launcher (srun, mpirun, torchrun) started as this rank. Only rank 0 touches the run folder: the
 * config comes with the ring, and the state to resume from is broadcast by rank 0.
 *
 * Resolves when the coordinator says stop; rejects (after telling the coordinator, when it still
 * can) on any failure, including a lost coordinator or ring neighbour.
 */
export async function runWorker(spec: WorkerSpec, o: { signal?: AbortSignal } = {}): Promise<void> {
  const { rank, worldSize, coordinator, runDir } = spec;
  const log = (line: string) => process.stderr.write(`[rank ${rank}] ${line}\n`);
  // Every socket of a run with a key uses CURVE; each process reads the key file itself.
  const security = await RunSecurity.open(spec.authKey ? readRunKey(spec.authKey) : null, { onRefused: log }).catch((e: unknown) => {
    log(isSlferError(e) ? e.format() : String(e));
    throw e;
  });
  const control = security.client(new Dealer({ linger: 2000, heartbeatInterval: HEARTBEAT_INTERVAL_MS, heartbeatTimeout: HEARTBEAT_TIMEOUT_MS, heartbeatTimeToLive: HEARTBEAT_TIMEOUT_MS }));
  control.connect(coordinator);
  // The coordinator's connection dropping after we joined means it (or its machine, or the link)
  // is gone: nobody is left to say stop, so stop now, within seconds, whatever is running.
  const ring = new Ring({ rank, worldSize, transport: spec.transport, host: spec.host, advertise: spec.advertise, security });
  const lost = new Tripwire();
  const abort = new AbortController();
  let joined = false;
  const stop = (e: SlferError) => {
    lost.trip(e);
    abort.abort();
    // A collective waiting on a lost neighbour would otherwise wait out its timeout.
    ring.abort(e);
  };
  control.events.on('disconnect', () => {
    if (joined) stop(errors.clusterCoordinatorLost(rank, coordinator));
  });
  // Ctrl-C or a launcher's SIGTERM for this process (a rank started by srun, mpirun, torchrun).
  const onAbort = () => stop(errors.aborted(`rank ${rank}`));
  if (o.signal?.aborted) onAbort();
  o.signal?.addEventListener('abort', onAbort);
  let sending: Promise<void> = Promise.resolve();
  /** One send at a time on the control socket (zeromq allows a single pending send). */
  const send = (m: WorkerMessage): Promise<void> => (sending = sending.then(() => control.send(encode(m))));
  const receive = async (): Promise<CoordinatorMessage> => decodeCoordinatorMessage((await lost.watch(control.receive()))[0]);
  const heartbeatId = `hb-${rank}-${process.pid}-${randomBytes(6).toString('hex')}`;
  const heartbeat = new Worker(compiledSibling(import.meta.url, 'heartbeat-thread.js'), {
    workerData: { endpoint: coordinator, rank, intervalMs: spec.heartbeatMs, routingId: heartbeatId, key: security.key },
  });
  let session: TrainingSession | undefined;
  try {
    const endpoint = await ring.bind();
    const joinedRing = await joinRendezvous(coordinator, {
      rank,
      worldSize,
      endpoint,
      ipcEndpoint: ring.ipcEndpoint,
      machine: machineId(),
      dealer: control,
      runId: spec.runId,
      attempt: spec.attempt,
      heartbeatId,
    });
    joined = true;
    await ring.connect(joinedRing.endpoints);
    // The rendezvous set its own timeouts on the control socket; commands may be far apart.
    control.receiveTimeout = -1;
    control.sendTimeout = -1;
    const welcome = decodeWelcome(joinedRing.welcome);
    const config = resolveConfig(welcome.config, 'the config sent by the coordinator');

    const engine = await selectBackend(config.engine.backend);
    const { splits } = await prepareData(config, rank === 0 ? log : () => {});
    session = new TrainingSession(config, splits, rank, worldSize);
    // Rank 0 alone reads the run folder or a pretrained backbone; the broadcast below gives its
    // whole state (weights, statistics, optimizer) to the others, as DDP does at construction.
    if (rank === 0 && spec.resume) session.restore(loadCheckpoint(spec.resume));
    else if (rank === 0 && config.model.pretrained) for (const line of formatPretrained(await loadPretrained(session.model, config.model.pretrained))) log(line);
    await broadcastState(session, ring);
    // Mid-epoch: rank 0's broadcast gave everyone its BN statistics; each rank takes back its own.
    if (rank !== 0 && welcome.resume) await session.resumeRank({ ...welcome.resume, progress: progressFromWire(welcome.resume.progress) }, 'the mid-epoch checkpoint rank 0 resumed from');
    const reducer = new RingGradientReducer(
      ring,
      session.model.store.params.map((p) => p.shape),
      spec.bucketBytes,
      spec.compression,
    );
    await send({
      type: 'ready',
      rank,
      backend: engine.backend,
      reason: engine.convolutions ? `${engine.reason}; convolutions: ${engine.convolutions}` : engine.reason,
      stepsPerEpoch: session.stepsPerEpoch,
      parameters: session.model.store.paramCount,
      trainImages: splits.train.length,
      testImages: splits.test.length,
    });

    for (;;) {
      const cmd = await receive();
      if (cmd.type === 'stop') break;
      if (cmd.type === 'epoch') {
        const st = await session.trainEpoch(cmd.epoch, {
          reducer,
          signal: abort.signal,
          checkpointEvery: config.train.checkpointEvery,
          // Every rank hands its share to the coordinator; rank 0 then gets all of them and saves.
          // The others go on at once: the next step's all-reduce waits for rank 0 anyway.
          onCheckpointDue: async (step) => {
            await send({ type: 'mid-progress', rank, epoch: cmd.epoch, step, progress: progressToWire(await session!.rankProgress()) });
            if (rank !== 0) return;
            const save = await receive();
            if (save.type !== 'checkpoint-mid' || save.epoch !== cmd.epoch || save.step !== step) {
              throw errors.controlMessageInvalid('the coordinator', `"${save.type}" where the mid-epoch checkpoint of epoch ${cmd.epoch + 1}, step ${step} was due`);
            }
            const state = await session!.midEpochState(save.ranks.map(progressFromWire));
            const path = saveCheckpoint(join(runDir!, RUN_FILES.checkpoints), state, specsOf(session!.model), { keepLast: config.train.keepCheckpoints });
            await send({ type: 'mid-checkpointed', rank, epoch: cmd.epoch, step, path });
          },
          // Every step: one small frame per (at least ~0.1 s) step, and the coordinator then knows the
          // exact step a failure happened at (a crash loop repeats the same one).
          onStep: (e) => void send({ type: 'progress', rank, epoch: e.epoch, step: e.step, steps: e.steps, loss: e.loss, images: e.images }),
        });
        // Moving statistics differ per shard; evaluation and checkpoints use their average.
        await averageBuffers(session, ring);
        const ev = await session.evaluate();
        await send({
          type: 'epoch-done',
          rank,
          epoch: cmd.epoch,
          images: st.images,
          seconds: st.seconds,
          computeMs: st.computeMs,
          reduceMs: st.reduceMs,
          waitMs: st.waitMs,
          lossSums: st.lossSums,
          skipped: st.skipped,
          confusion: ev.confusionMatrix,
          evalSkipped: ev.skipped,
          checksum: await checksum(session),
        });
      } else if (cmd.type === 'checkpoint') {
        if (runDir === undefined) throw errors.internal(`rank ${rank} was asked to write a checkpoint but has no run folder`);
        const path = saveCheckpoint(join(runDir, RUN_FILES.checkpoints), await session.state(cmd.epoch, cmd.testAccuracy), specsOf(session.model), {
          keepLast: config.train.keepCheckpoints,
          best: cmd.best,
        });
        await send({ type: 'checkpointed', rank, epoch: cmd.epoch, path });
      }
    }
    await sending;
  } catch (e) {
    // A lost coordinator explains whatever failed after it (an aborted step, a broken ring).
    const cause = lost.tripped ?? e;
    const error = toWire(cause);
    log(isSlferError(cause) ? cause.format() : error.message);
    if (!lost.tripped) {
      await Promise.race([send({ type: 'failed', rank, error }).catch(() => {}), new Promise((r) => setTimeout(r, 1000))]);
    }
    throw cause;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    heartbeat.postMessage('stop');
    await session?.close();
    await ring.close();
    if (lost.tripped) control.linger = 0;
    control.close();
    security.close();
  }
}

/** Rank 0's whole training state to every rank, in one broadcast: params, buffers, Adam's moments, then Adam's t and the step count. */
async function broadcastState(session: TrainingSession, ring: Ring): Promise<void> {
  if (ring.worldSize === 1) return;
  const { params, buffers } = await session.model.store.read();
  const adam = await session.adam.read();
  // Counters as 16-bit halves: exact in float32 whatever their size.
  const split = (x: number) => [x % 65536, Math.floor(x / 65536)];
  const parts = [...params, ...buffers, ...adam.m, ...adam.v, Float32Array.from([...split(adam.t), ...split(session.step)])];
  const flat = flatten(parts);
  await ring.broadcast(flat, 0);
  unflatten(flat, parts);
  const n = params.length;
  const b = buffers.length;
  const counters = parts[parts.length - 1];
  session.model.store.write(params, buffers);
  session.adam.write({ t: counters[0] + counters[1] * 65536, m: parts.slice(n + b, n + b + adam.m.length), v: parts.slice(n + b + adam.m.length, n + b + 2 * adam.m.length) });
  session.step = counters[2] + counters[3] * 65536;
}

/** Replaces every rank's BN moving statistics by their mean over the ring. */
async function averageBuffers(session: TrainingSession, ring: Ring): Promise<void> {
  const { params, buffers } = await session.model.store.read();
  const flat = flatten(buffers);
  await ring.allReduce(flat, { average: true });
  unflatten(flat, buffers);
  session.model.store.write(params, buffers);
}

function flatten(parts: Float32Array[]): Float32Array {
  const flat = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    flat.set(p, o);
    o += p.length;
  }
  return flat;
}

function unflatten(flat: Float32Array, parts: Float32Array[]): void {
  let o = 0;
  for (const p of parts) {
    p.set(flat.subarray(o, o + p.length));
    o += p.length;
  }
}

async function checksum(session: TrainingSession): Promise<string> {
  const { params, buffers } = await session.model.store.read();
  const h = createHash('sha256');
  for (const t of [...params, ...buffers]) h.update(Buffer.from(t.buffer, t.byteOffset, t.byteLength));
  return h.digest('hex');
}
