import { describe, expect, it } from 'vitest';
import { errors, fromWire, SlferError, toWire } from '../src/errors.js';

describe('errors across a thread or process boundary', () => {
  it('a SlferError survives toWire/fromWire (code, message, hint) through structured clone', () => {
    const e = errors.maskInvalid('/d/m.png', 'holds the class id 19 at pixel (0, 0)');
    const back = fromWire(structuredClone(toWire(e)), 'a test');
    expect(back).toBeInstanceOf(SlferError);
    expect([back.code, back.message, back.hint]).toEqual([e.code, e.message, e.hint]);
  });

  it('anything else crosses as SLFER_INTERNAL with its stack', () => {
    const w = toWire(new TypeError('x is undefined'));
    expect(w.code).toBe('SLFER_INTERNAL');
    expect(w.message).toMatch(/^unexpected error: TypeError: x is undefined\n\s+at /);
  });

  it('a malformed or unknown-code error report is itself reported, naming where it came from', () => {
    for (const bad of [null, 'oops', { code: 'SLFER_WORKER_FAILED', message: 'm', hint: 'h' }, { code: 'SLFER_ABORTED', message: 3, hint: '' }]) {
      const e = fromWire(bad, 'worker rank 1');
      expect(e.code).toBe('SLFER_INTERNAL');
      expect(e.message).toContain('worker rank 1 reported an error in an unknown format');
    }
  });
});
