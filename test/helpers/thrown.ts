import type { SlferError } from '../../src/errors.js';

/** The error `f` throws (a test failure when it returns instead). */
export function thrown(f: () => unknown): SlferError {
  try {
    f();
  } catch (e) {
    return e as SlferError;
  }
  throw new Error('expected an error');
}
