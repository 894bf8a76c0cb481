// Open MPI and MPICH (Hydra) launches across the two namespaces of test/helpers/netns.ts. Neither
// needs sshd: both take an ssh stand-in (pair.sshAgent()) that nsenters the namespace named by its
// host argument. The launcher itself runs on the first node (pair.exec on nodes[0]) so that the
// remote daemons (orted, hydra_pmi_proxy) can connect back to it over the veth.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { namespacesAvailable, which, type Availability, type TwoNodes } from './netns.js';

// Debian's alternatives may point mpirun at either implementation: name each one's own binary.
export const OPENMPI_BIN = 'mpirun.openmpi';
export const HYDRA_BIN = 'mpiexec.hydra';

const available = (bin: string, pkg: string): Availability => {
  const ns = namespacesAvailable();
  if (!ns.ok) return ns;
  return which(bin) ? { ok: true } : { ok: false, reason: `${bin} not found (apt-get install -y --no-install-recommends ${pkg})` };
};
export const openMpiAvailable = () => available(OPENMPI_BIN, 'openmpi-bin');
export const mpichAvailable = () => available(HYDRA_BIN, 'mpich');

export interface MpiHosts {
  /** The ssh stand-in, `<agent> [-x] <host> <command...>`. */
  agent: string;
  /** `n1 slots=1` per node (Open MPI). */
  openMpiHostfile: string;
  /** `n1:1` per node (Hydra). */
  hydraHostfile: string;
}

/** Writes the hostfiles (one slot per node, so -np 2 puts one rank on each) into pair.dir. */
export function mpiHosts(pair: TwoNodes, slots = 1): MpiHosts {
  const openMpiHostfile = join(pair.dir, 'hostfile.openmpi');
  const hydraHostfile = join(pair.dir, 'hostfile.hydra');
  writeFileSync(openMpiHostfile, pair.nodes.map((n) => `${n.name} slots=${slots}\n`).join(''));
  writeFileSync(hydraHostfile, pair.nodes.map((n) => `${n.name}:${slots}\n`).join(''));
  return { agent: pair.sshAgent(), openMpiHostfile, hydraHostfile };
}

export interface Launch {
  /** The launcher binary, to run on pair.nodes[0] (with identity). */
  cmd: string;
  args: string[];
  /** Variables the launcher needs (none are secrets). */
  env: Record<string, string>;
}

/** `mpirun -np <np> program args` across both nodes. */
export function openMpiLaunch(pair: TwoNodes, program: string, args: string[] = [], o: { np?: number; hosts?: MpiHosts } = {}): Launch {
  const hosts = o.hosts ?? mpiHosts(pair);
  const ifname = pair.nodes[0].ifname;
  return {
    cmd: OPENMPI_BIN,
    args: [
      '--allow-run-as-root',
      '--hostfile', hosts.openMpiHostfile,
      '-np', String(o.np ?? pair.nodes.length),
      '--mca', 'plm_rsh_agent', hosts.agent,
      // Only the veth, the one link the nodes share: Open MPI otherwise offers its peers every
      // interface it finds (loopback included, for its out-of-band channel).
      '--mca', 'oob_tcp_if_include', ifname,
      '--mca', 'btl_tcp_if_include', ifname,
      program,
      ...args,
    ],
    // Some Open MPI builds read only these to allow root.
    env: { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' },
  };
}

/** `mpiexec -n <np> program args` (MPICH's Hydra) across both nodes. */
export function hydraLaunch(pair: TwoNodes, program: string, args: string[] = [], o: { np?: number; hosts?: MpiHosts } = {}): Launch {
  const hosts = o.hosts ?? mpiHosts(pair);
  return {
    cmd: HYDRA_BIN,
    args: ['-launcher', 'ssh', '-launcher-exec', hosts.agent, '-f', hosts.hydraHostfile, '-iface', pair.nodes[0].ifname, '-n', String(o.np ?? pair.nodes.length), program, ...args],
    env: {},
  };
}
