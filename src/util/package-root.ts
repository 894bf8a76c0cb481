import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package root: the nearest folder above `importMetaUrl`'s module with a package.json (the
 * checkout under vitest, the installed package when run from dist/). Native pieces are built under
 * its build/ folder.
 */
export function packageRoot(importMetaUrl: string): string {
  let dir = dirname(fileURLToPath(importMetaUrl));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`package.json not found above ${fileURLToPath(importMetaUrl)}`);
    dir = up;
  }
  return dir;
}
