import { expect } from 'vitest';
import { loadCheckpoint } from '../../src/train/checkpoint.js';

const bytes = (t: Float32Array) => Buffer.from(t.buffer, t.byteOffset, t.byteLength);

/** Two checkpoints (or run folders) hold bitwise the same weights and BN statistics, after as many epochs. */
export function expectSameWeights(a: string, b: string): void {
  const x = loadCheckpoint(a);
  const y = loadCheckpoint(b);
  expect(y.epoch, `${b} against ${a}`).toBe(x.epoch);
  expect(y.params.length).toBe(x.params.length);
  expect(y.buffers.length).toBe(x.buffers.length);
  x.params.forEach((p, i) => expect(Buffer.compare(bytes(p), bytes(y.params[i])), `param ${i}`).toBe(0));
  x.buffers.forEach((p, i) => expect(Buffer.compare(bytes(p), bytes(y.buffers[i])), `buffer ${i}`).toBe(0));
}
