/**
 * A launch's attempts, for restarts after failures: attempts.json in the run folder says when each
 * began, from which checkpoint, and how and where it ended; and where a new attempt starts from.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSlferError } from '../src/errors.js';
import { listCheckpoints, loadCheckpoint } from '../src/train/checkpoint.js';
import { RUN_FILES } from '../src/train/run-files.js';
import { writeFileAtomic } from '../src/util/atomic.js';

export const ATTEMPTS_FILE = 'attempts.json';

export interface AttemptRecord {
  attempt: number;
  startedAt: string;
  /** The checkpoint every rank restored, or null for a fresh start. */
  resumedFrom: string | null;
  /** Epochs already done when it began. */
  startEpoch: number;
  endedAt?: string;
  outcome?: 'succeeded' | 'failed';
  failure?: { code: string; message: string; epoch?: number; step?: number };
}

export class AttemptLog {
  private readonly records: AttemptRecord[];
  private readonly file: string;

  /** `continuing`: a resumed run keeps the attempts recorded before. */
  constructor(runDir: string, continuing: boolean) {
    this.file = join(runDir, ATTEMPTS_FILE);
    this.records = continuing && existsSync(this.file) ? (JSON.parse(readFileSync(this.file, 'utf8')) as AttemptRecord[]) : [];
  }

  get all(): readonly AttemptRecord[] {
    return this.records;
  }

  begin(resumedFrom: string | undefined, startEpoch: number): number {
    const attempt = (this.records.at(-1)?.attempt ?? 0) + 1;
    this.records.push({ attempt, startedAt: new Date().toISOString(), resumedFrom: resumedFrom ?? null, startEpoch });
    this.save();
    return attempt;
  }

  end(o: { outcome: 'succeeded' | 'failed'; error?: unknown; at?: { epoch: number; step: number } }): void {
    const r = this.records.at(-1)!;
    r.endedAt = new Date().toISOString();
    r.outcome = o.outcome;
    if (o.error !== undefined) {
      const e = o.error;
      r.failure = { code: isSlferError(e) ? e.code : 'SLFER_INTERNAL', message: e instanceof Error ? e.message : String(e), ...o.at };
    }
    this.save();
  }

  /** Whether the attempt before the current one failed at this same step: a crash loop, not bad luck. */
  failedAtSameStepAsLast(at: { epoch: number; step: number }): boolean {
    const before = this.records.at(-2)?.failure;
    return before !== undefined && before.epoch === at.epoch && before.step === at.step;
  }

  private save(): void {
    writeFileAtomic(this.file, JSON.stringify(this.records, null, 1) + '\n');
  }
}

/** The newest epoch checkpoint of a run whose checksum verifies (a damaged one is passed over). */
export function newestVerifiedCheckpoint(runDir: string): { path: string; epoch: number } | undefined {
  const dir = join(runDir, RUN_FILES.checkpoints);
  if (!existsSync(dir)) return undefined;
  // Newest first, mid-epoch ones (train.checkpointEvery) included: a restart repeats the fewest steps.
  const names = listCheckpoints(dir)
    .map((c) => c.name)
    .reverse();
  for (const name of names) {
    try {
      const c = loadCheckpoint(join(dir, name));
      return { path: c.path, epoch: c.epoch };
    } catch {
      // Damaged or half-deleted: the one before it may be whole.
    }
  }
  return undefined;
}
