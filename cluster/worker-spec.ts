/**
 * What a `launch` worker process is told when it starts: one typed record, validated on both sides
 * (the coordinator writes it, the worker checks it on arrival), in one environment variable.
 */
import { z } from 'zod';
import { errors } from '../src/errors.js';
import { DEFAULT_BUCKET_BYTES } from './collective/buckets.js';

export const WorkerSpecSchema = z.strictObject({
  rank: z.number().int().nonnegative(),
  worldSize: z.number().int().positive(),
  /** The coordinator's control endpoint (its Router). */
  coordinator: z.string().min(1),
  /** The run folder, on rank 0's machine: only rank 0 writes it (checkpoints). */
  runDir: z.string().min(1).optional(),
  /** The checkpoint rank 0 restores before the first epoch (and broadcasts: no shared filesystem needed). */
  resume: z.string().min(1).optional(),
  transport: z.enum(['tcp', 'ipc', 'auto']).default('tcp'),
  /** Address the ring socket binds (0.0.0.0 when the world spans machines) and the one peers reach it at. */
  host: z.string().min(1).default('127.0.0.1'),
  advertise: z.string().min(1).optional(),
  /** The run and attempt this process belongs to; the coordinator refuses any other's registration. */
  runId: z.string().min(1).default('local'),
  attempt: z.number().int().nonnegative().default(0),
  /** The run key file: every socket of the run uses CURVE with it (each process reads it itself). */
  authKey: z.string().min(1).optional(),
  bucketBytes: z.number().int().positive().default(DEFAULT_BUCKET_BYTES),
  compression: z.enum(['none', 'fp16']).default('none'),
  heartbeatMs: z.number().int().positive().default(1000),
});
export type WorkerSpec = z.infer<typeof WorkerSpecSchema>;

export const WORKER_SPEC_ENV = 'SLFER_WORKER_SPEC';

export function workerSpecEnv(spec: z.input<typeof WorkerSpecSchema>): NodeJS.ProcessEnv {
  return { [WORKER_SPEC_ENV]: JSON.stringify(WorkerSpecSchema.parse(spec)) };
}

/** This process's spec, or an error naming the field that is wrong (a worker started by hand, a version mix). */
export function readWorkerSpec(env: NodeJS.ProcessEnv = process.env): WorkerSpec {
  const text = env[WORKER_SPEC_ENV];
  if (!text) throw errors.invalidArgument(WORKER_SPEC_ENV, 'is not set', 'worker processes are started by `slfer-dist launch`, not by hand');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw errors.invalidArgument(WORKER_SPEC_ENV, `is not JSON (${(e as Error).message})`, 'worker processes are started by `slfer-dist launch`, not by hand');
  }
  const r = WorkerSpecSchema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw errors.invalidArgument(WORKER_SPEC_ENV, `field "${issue.path.join('.') || '(root)'}" ${issue.message}`, 'the coordinator and its workers must be the same slfer-dist version');
}
