import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Which machine this process runs on, for the ipc/tcp choice: ranks with equal ids share a kernel
 * and a filesystem, so a Unix socket reaches between them. The hostname alone is not enough
 * (containers and clones reuse names), and neither is the boot id alone (network namespaces, as in
 * the tests, or a container with its own hostname, are separate "nodes" on one kernel).
 */
export function machineId(): string {
  let boot = '';
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // Not Linux: the hostname has to do.
  }
  return `${hostname()}/${boot}`;
}
