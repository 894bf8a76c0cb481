/** Small filesystem helpers shared by the dataset readers. */
import { existsSync, readdirSync } from 'node:fs';

/** Names of the plain files in a folder, or an empty set when the folder does not exist. */
export function fileNames(dir: string): Set<string> {
  if (!existsSync(dir)) return new Set();
  return new Set(readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name));
}

/** Code-unit order: the same on every machine and locale, unlike localeCompare. */
export const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
