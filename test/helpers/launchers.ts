import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const FIX = join(import.meta.dirname, '../fixtures/launchers');

/** A launcher's environment captured from a real run (test/fixtures/launchers/README.md says how). */
export const captured = (name: string): NodeJS.ProcessEnv =>
  Object.fromEntries(
    readFileSync(join(FIX, name), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
