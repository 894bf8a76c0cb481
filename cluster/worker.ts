import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Dealer } from 'zeromq';
import { readFileSync } from 'node:fs';
import { resolveConfig, type Config } from '../src/config.js';
import { selectBackend } from '../src/engine/backend.js';
import { isSlferError, toWire } from '../src/errors.js';
import { loadCheckpoint, saveCheckpoint } from '../src/train/checkpoint.js';
import { RUN_FILES } from '../src/train/run-files.js';
import { formatPretrained, loadPretrained } from '../src/train/pretrained.js';
import { TrainingSession } from '../src/train/session.js';
import { prepareData, specsOf } from '../src/train/trainer.js';
import { compiledSibling } from '../src/util/compiled-path.js';
import { Ring } from './collective/ring.js';
import { rendezvous } from './collective/rendezvous.js';
import { RingGradientReducer } from './gradient-reducer.js';
import { decodeCoordinatorMessage, encode, type CoordinatorMessage, type WorkerMessage } from './protocol.js';
import { readWorkerSpec, type WorkerSpec } from './worker-spec.js';

/**
 * One worker process of `slfer-dist launch`: the single-process trainer's TrainingSession on this
 * rank's shard, with gradients averaged over the ring every step. It does what the coordinator
 * says, one command at a time (epoch, checkpoint, stop), and reports back on the control channel.
 */
const spec = ((): WorkerSpec => {
  try {
    return readWorkerSpec();
  } catch (e) {
    // Before any socket exists: say what is wrong and leave (the coordinator reports the exit).
    process.stderr.write(`${isSlferError(e) ? e.format() : String(e)}\n`);
    process.exit(1);
  }
})();
const { rank, worldSize, coordinator, runDir } = spec;

// The coordinator is our parent: if it dies, there is nobody to report to.
process.on('disconnect', () => process.exit(1));

const control = new Dealer({ linger: 2000 });
control.connect(coordinator);
let sending: Promise<void> = Promise.resolve();
/** One send at a time on the control socket (zeromq allows a single pending send). */
const send = (m: WorkerMessage): Promise<void> => (sending = sending.then(() => control.send(encode(m))));
const receive = async (): Promise<CoordinatorMessage> => decodeCoordinatorMessage((await control.receive())[0]);

const heartbeat = new Worker(compiledSibling(import.meta.url, 'heartbeat-thread.js'), {
  workerData: { endpoint: coordinator, rank, intervalMs: spec.heartbeatMs },
});

async function main(): Promise<void> {
  const config: Config = resolveConfig(JSON.parse(readFileSync(join(runDir, RUN_FILES.config), 'utf8')), `${runDir}/config.json`);
  const ring = new Ring({ rank, worldSize, transport: spec.transport });
  const endpoint = await ring.bind();
  const endpoints = await rendezvous(coordinator, { rank, worldSize, endpoint, dealer: control });
  await ring.connect(endpoints);
  // The rendezvous set its own timeouts on the control socket; commands may be far apart.
  control.receiveTimeout = -1;
  control.sendTimeout = -1;

  const engine = await selectBackend(config.engine.backend);
  const log = (line: string) => process.stderr.write(`[rank ${rank}] ${line}\n`);
  const { splits } = await prepareData(config, rank === 0 ? log : () => {});
  const session = new TrainingSession(config, splits, rank, worldSize);
  const resume = spec.resume;
  if (resume) session.restore(loadCheckpoint(resume));
  // Rank 0 alone reads a pretrained backbone; the broadcast below gives it to the others.
  else if (rank === 0 && config.model.pretrained) for (const line of formatPretrained(await loadPretrained(session.model, config.model.pretrained))) log(line);
  // Every rank starts from rank 0's weights, as DDP does at construction.
  await syncState(session, ring, 'broadcast');
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
        // Every step: one small frame per (at least ~0.1 s) step, and the coordinator then knows the
        // exact step a failure happened at (a crash loop repeats the same one).
        onStep: (e) => void send({ type: 'progress', rank, epoch: e.epoch, step: e.step, steps: e.steps, loss: e.loss, images: e.images }),
      });
      // Moving statistics differ per shard; evaluation and checkpoints use their average.
      await syncState(session, ring, 'average-buffers');
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
      const path = saveCheckpoint(join(runDir, RUN_FILES.checkpoints), await session.state(cmd.epoch, cmd.testAccuracy), specsOf(session.model), {
        keepLast: config.train.keepCheckpoints,
        best: cmd.best,
      });
      await send({ type: 'checkpointed', rank, epoch: cmd.epoch, path });
    }
  }
  await session.close();
  await ring.close();
}

/** Broadcasts rank 0's weights and statistics, or averages the BN statistics, over the ring. */
async function syncState(session: TrainingSession, ring: Ring, what: 'broadcast' | 'average-buffers'): Promise<void> {
  const { params, buffers } = await session.model.store.read();
  const parts = what === 'broadcast' ? [...params, ...buffers] : buffers;
  const flat = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    flat.set(p, o);
    o += p.length;
  }
  if (what === 'broadcast') await ring.broadcast(flat, 0);
  else await ring.allReduce(flat, { average: true });
  o = 0;
  for (const p of parts) {
    p.set(flat.subarray(o, o + p.length));
    o += p.length;
  }
  session.model.store.write(params, buffers);
}

async function checksum(session: TrainingSession): Promise<string> {
  const { params, buffers } = await session.model.store.read();
  const h = createHash('sha256');
  for (const t of [...params, ...buffers]) h.update(Buffer.from(t.buffer, t.byteOffset, t.byteLength));
  return h.digest('hex');
}

main()
  .then(async () => {
    heartbeat.postMessage('stop');
    await sending;
    control.close();
    process.exit(0);
  })
  .catch(async (e: unknown) => {
    const error = toWire(e);
    process.stderr.write(`[rank ${rank}] ${isSlferError(e) ? e.format() : error.message}\n`);
    await Promise.race([send({ type: 'failed', rank, error }), new Promise((r) => setTimeout(r, 1000))]);
    process.exit(1);
  });
