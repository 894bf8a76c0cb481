import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'slfer-dist.js');

/** Runs the built CLI (`npx tsc -p tsconfig.json` first) as a child process, colours off. */
export function runCli(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: o.cwd, timeout: o.timeoutMs ?? 300_000, env: { ...process.env, FORCE_COLOR: '0', ...o.env } });
}
