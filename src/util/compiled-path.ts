import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { errors } from '../errors.js';

/**
 * Path of a sibling module as compiled JavaScript. Worker threads and child processes load plain
 * .js files, so when this code runs from TypeScript sources (under vitest) the entry point is taken
 * from dist/, which `npm test` builds first. In an esbuild bundle (`.mjs`, scripts/gpu/prepare.sh)
 * every entry point is bundled flat beside the caller as `<name>.mjs`.
 */
export function compiledSibling(importMetaUrl: string, basename: string): string {
  const here = fileURLToPath(importMetaUrl);
  const js = basename.replace(/\.ts$/, '.js');
  const dir = here.slice(0, here.lastIndexOf('/') + 1);
  if (here.endsWith('.mjs')) return dir + js.replace(/\.js$/, '.mjs');
  if (here.endsWith('.js')) return dir + js;
  const root = dir.lastIndexOf('/src/') >= 0 ? dir.lastIndexOf('/src/') : dir.lastIndexOf('/cluster/');
  const compiled = dir.slice(0, root) + '/dist' + dir.slice(root) + js;
  if (!existsSync(compiled)) {
    throw errors.invalidArgument(
      'worker entry point',
      `${compiled} does not exist`,
      'build the project first: npm run build',
    );
  }
  return compiled;
}

