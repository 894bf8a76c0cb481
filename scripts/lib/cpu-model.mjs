import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The CPU's model name, as `lscpu` says it (or /proc/cpuinfo without lscpu): every figure names it. */
export function cpuModel() {
  try {
    const m = /^Model name:\s*(.+)$/m.exec(execFileSync('lscpu', { encoding: 'utf8' }));
    if (m) return m[1].trim();
  } catch {
    /* no lscpu: /proc/cpuinfo says the same */
  }
  return /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1].trim() ?? 'unknown';
}
