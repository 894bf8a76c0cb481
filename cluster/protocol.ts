import { pack, unpack } from 'msgpackr';
import { z } from 'zod';
import { errors } from '../src/errors.js';
import type { RankEpochProgress } from '../src/train/checkpoint.js';

/**
 * Control messages between the coordinator and its workers, after the rendezvous (see
 * collective/rendezvous.ts), on the same Router/Dealer pair: one msgpackr frame each, with a `type`.
 * Small by design: gradients and weights never travel here, they go around the ring as raw frames.
 * One schema per direction, checked on receipt: a frame that is not one of these messages is a typed
 * error, never a cast.
 */

const skippedFile = z.strictObject({ path: z.string(), reason: z.string() });
const rank = z.number().int().nonnegative();
const count = z.number().nonnegative();

const EpochReportSchema = z.strictObject({
  images: count,
  seconds: count,
  computeMs: count,
  reduceMs: count,
  waitMs: count,
  lossSums: z.strictObject({ total: z.number(), expression: z.number(), segmentation: z.number(), components: z.number() }),
  skipped: z.array(skippedFile),
  /** This rank's share of the test split: confusion counts [true][predicted]. */
  confusion: z.array(z.array(count)),
  evalSkipped: z.array(skippedFile),
  /** SHA-256 of the weights and BN statistics after the epoch (must be equal on every rank). */
  checksum: z.string().regex(/^[0-9a-f]{64}$/),
});
export type EpochReport = z.infer<typeof EpochReportSchema>;

const lossSum = z.union([z.number(), z.nan()]);
/**
 * A rank's share of an epoch so far (src/train/checkpoint.ts's RankEpochProgress), for a mid-epoch
 * checkpoint: BN statistics as raw float32 bytes (msgpack has no typed arrays), numbers as float64
 * (squeezed into float32 the epoch's loss sums would differ after a resume).
 */
const WireProgressSchema = z.strictObject({
  rank,
  buffers: z.array(z.instanceof(Uint8Array).refine((b) => b.byteLength % 4 === 0, 'must hold whole float32 values')),
  images: count,
  lossSums: z.strictObject({ total: lossSum, expression: lossSum, segmentation: lossSum, components: lossSum }),
  skipped: z.array(skippedFile),
  seconds: count,
  computeMs: count,
  reduceMs: count,
  waitMs: count,
});
export type WireProgress = z.infer<typeof WireProgressSchema>;

export function progressToWire(p: RankEpochProgress): WireProgress {
  return { ...p, buffers: p.buffers.map((b) => new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.byteLength)) };
}

/** Copies: a received frame's bytes may sit at an odd address, and a Float32Array may not. */
export function progressFromWire(w: WireProgress): RankEpochProgress {
  return { ...w, buffers: w.buffers.map((b) => new Float32Array(new Uint8Array(b).buffer)) };
}

const wireError = z.strictObject({ code: z.string(), message: z.string(), hint: z.string() });

const WorkerMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('ready'), rank, backend: z.string(), reason: z.string(), stepsPerEpoch: count, parameters: count, trainImages: count, testImages: count }),
  z.strictObject({ type: z.literal('heartbeat'), rank }),
  // loss is NaN for a step whose every image was unreadable (no sample, no loss).
  z.strictObject({ type: z.literal('progress'), rank, epoch: count, step: count, steps: count, loss: z.union([z.number(), z.nan()]), images: count }),
  EpochReportSchema.extend({ type: z.literal('epoch-done'), rank, epoch: count }),
  z.strictObject({ type: z.literal('checkpointed'), rank, epoch: count, path: z.string() }),
  // At a mid-epoch checkpoint step (train.checkpointEvery): every rank's share, for rank 0 to save.
  z.strictObject({ type: z.literal('mid-progress'), rank, epoch: count, step: count, progress: WireProgressSchema }),
  z.strictObject({ type: z.literal('mid-checkpointed'), rank, epoch: count, step: count, path: z.string() }),
  // The code is checked against SlferErrorCode by fromWire on arrival, which reports a bad one.
  z.strictObject({ type: z.literal('failed'), rank, error: wireError }),
]);
export type WorkerMessage = z.infer<typeof WorkerMessageSchema>;

const CoordinatorMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('epoch'), epoch: count }),
  z.strictObject({ type: z.literal('checkpoint'), epoch: count, testAccuracy: z.number(), best: z.boolean() }),
  z.strictObject({ type: z.literal('stop') }),
  // To rank 0: save the mid-epoch checkpoint after `step` of `epoch` (0-based), with every rank's share.
  z.strictObject({ type: z.literal('checkpoint-mid'), epoch: count, step: count, ranks: z.array(WireProgressSchema) }),
]);

/**
 * What every rank gets with its ring: rank 0's config, and for a resume from a mid-epoch checkpoint
 * (which only rank 0's machine holds) this rank's own share of the epoch so far.
 */
const WelcomeSchema = z.strictObject({
  config: z.unknown(),
  resume: z.strictObject({ epoch: count, step: count, progress: WireProgressSchema }).optional(),
});
export type Welcome = z.infer<typeof WelcomeSchema>;
export const decodeWelcome = (value: unknown): Welcome => {
  const r = WelcomeSchema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw errors.controlMessageInvalid('the coordinator', `a welcome whose field "${issue.path.join('.') || '(root)'}" ${issue.message}`);
};
export type CoordinatorMessage = z.infer<typeof CoordinatorMessageSchema>;

export const encode = (m: WorkerMessage | CoordinatorMessage): Buffer => pack(m);

/** A frame as one of `schema`'s messages, or SLFER_CLUSTER_PROTOCOL saying what is wrong with it. */
function decodeAs<T>(schema: z.ZodType<T>, b: Buffer, from: string): T {
  let value: unknown;
  try {
    value = unpack(b);
  } catch (e) {
    throw errors.controlMessageInvalid(from, `a ${b.length}-byte frame that is not msgpack (${(e as Error).message})`);
  }
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const type = typeof value === 'object' && value !== null && 'type' in value ? `"${String((value as { type: unknown }).type)}" ` : '';
  throw errors.controlMessageInvalid(from, `a ${type}message whose field "${issue.path.join('.') || '(root)'}" ${issue.message}`);
}

export const decodeWorkerMessage = (b: Buffer, from: string): WorkerMessage => decodeAs(WorkerMessageSchema, b, from);
export const decodeCoordinatorMessage = (b: Buffer): CoordinatorMessage => decodeAs(CoordinatorMessageSchema, b, 'the coordinator');
