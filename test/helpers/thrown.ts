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

/** The error a promise rejects with (a test failure when it resolves instead). */
export async function rejected(p: Promise<unknown> | (() => unknown)): Promise<SlferError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return e as SlferError;
  }
  throw new Error('expected an error');
}
