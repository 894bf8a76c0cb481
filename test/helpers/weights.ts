import { expect } from 'vitest';
import { loadCheckpoint } from '../../src/train/checkpoint.js';

/** Two checkpoints (or run folders) hold bitwise the same weights and BN statistics, after as many epochs. */
export function expectSameWeights(a: string, b: string): void {
  const x = loadCheckpoint(a);
  const y = loadCheckpoint(b);
  expect(y.epoch, `${b} against ${a}`).toBe(x.epoch);
  x.params.forEach((p, i) => expect(Buffer.compare(Buffer.from(p.buffer), Buffer.from(y.params[i].buffer)), `param ${i}`).toBe(0));
  x.buffers.forEach((p, i) => expect(Buffer.compare(Buffer.from(p.buffer), Buffer.from(y.buffers[i].buffer)), `buffer ${i}`).toBe(0));
}
