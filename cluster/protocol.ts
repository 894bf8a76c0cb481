import { pack, unpack } from 'msgpackr';
import type { WireError } from '../src/errors.js';

/**
 * Control messages between the coordinator and its workers, after the rendezvous (see
 * collective/rendezvous.ts), on the same Router/Dealer pair: one msgpackr frame each, with a `type`.
 * Small by design: gradients and weights never travel here, they go around the ring as raw frames.
 */

export interface EpochReport {
  images: number;
  seconds: number;
  computeMs: number;
  reduceMs: number;
  waitMs: number;
  lossSums: { total: number; expression: number; segmentation: number; components: number };
  skipped: { path: string; reason: string }[];
  /** This rank's share of the test split: confusion counts [true][predicted]. */
  confusion: number[][];
  evalSkipped: { path: string; reason: string }[];
  /** SHA-256 of the weights and BN statistics after the epoch (must be equal on every rank). */
  checksum: string;
}

export type WorkerMessage =
  | { type: 'ready'; rank: number; backend: string; reason: string; stepsPerEpoch: number; parameters: number; trainImages: number; testImages: number }
  | { type: 'heartbeat'; rank: number }
  | { type: 'progress'; rank: number; epoch: number; step: number; steps: number; loss: number; images: number }
  | ({ type: 'epoch-done'; rank: number; epoch: number } & EpochReport)
  | { type: 'checkpointed'; rank: number; epoch: number; path: string }
  | { type: 'failed'; rank: number; error: WireError };

export type CoordinatorMessage =
  | { type: 'epoch'; epoch: number }
  | { type: 'checkpoint'; epoch: number; testAccuracy: number; best: boolean }
  | { type: 'stop' };

export const encode = (m: WorkerMessage | CoordinatorMessage): Buffer => pack(m);
export const decode = <T extends WorkerMessage | CoordinatorMessage>(b: Buffer): T => unpack(b) as T;

/** Environment variables a worker process is started with. */
export const ENV = {
  rank: 'SLFER_RANK',
  worldSize: 'SLFER_WORLD_SIZE',
  coordinator: 'SLFER_COORDINATOR',
  runDir: 'SLFER_RUN_DIR',
  resume: 'SLFER_RESUME',
  transport: 'SLFER_TRANSPORT',
  bucketBytes: 'SLFER_BUCKET_BYTES',
  compression: 'SLFER_COMPRESSION',
  heartbeatMs: 'SLFER_HEARTBEAT_MS',
} as const;
