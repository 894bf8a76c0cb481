// Types of two-nodes.mjs (plain ESM so that scripts run it without a build).
import type { ChildProcess, SpawnOptions } from 'node:child_process';

export type Availability = { ok: true } | { ok: false; reason: string };

export interface Node {
  /** Its hostname inside the namespace when run with identity, e.g. 'n1'. */
  name: string;
  index: 0 | 1;
  /** The network namespace, /run/netns/<ns>. */
  ns: string;
  /** Its address on the veth, 10.77.X.1 or 10.77.X.2 (/24). */
  addr: string;
  /** Bind-mounted over /etc/hosts for processes run with identity: localhost and both nodes. */
  hostsFile: string;
  /** The veth end inside the namespace (the same name in both). */
  ifname: string;
}

/** A node, or its name. */
export type NodeRef = string | Node;

export interface ExecOptions extends SpawnOptions {
  /** Own hostname and /etc/hosts (unshare --uts --mount); default true. */
  identity?: boolean;
}

export interface RunOptions extends Omit<ExecOptions, 'stdio'> {
  /** SIGKILLed after this long; default 60 s. */
  timeoutMs?: number;
  /** Written to its stdin, which is then closed. */
  input?: string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface TwoNodes {
  /** `<prefix>-<pid>-<random>`: the namespaces are `<id>-<node name>`. */
  id: string;
  /** A temp folder (hosts files, ssh agent), removed by close(); put a cluster's files here. */
  dir: string;
  /** '10.77.X.0/24' */
  subnet: string;
  nodes: [Node, Node];
  readonly closed: boolean;
  node(ref: NodeRef): Node;
  /** The nsenter command line that runs `cmd args` on the node, for spawners other than exec. */
  command(ref: NodeRef, cmd: string, args?: string[], o?: { identity?: boolean }): { file: string; args: string[] };
  exec(ref: NodeRef, cmd: string, args?: string[], opts?: ExecOptions): ChildProcess;
  /** exec, collecting output; resolves when it exits (or is killed at timeoutMs). */
  run(ref: NodeRef, cmd: string, args?: string[], opts?: RunOptions): Promise<RunResult>;
  /**
   * Sets the node's veth end down, like a pulled cable: its own connects and sends fail at once
   * (ENETUNREACH); the other node's get no answer. Open connections survive if the link comes back
   * before TCP gives up.
   */
  linkDown(ref: NodeRef): void;
  /** Sets it up again and forgets failed neighbour (ARP) lookups, so new connections work at once. */
  linkUp(ref: NodeRef): void;
  /** The processes now in either namespace (`ip netns pids`). */
  pids(): number[];
  /** Path of an ssh stand-in script: `<agent> [-x ...] <node name or addr> <command...>`. */
  sshAgent(): string;
  /** SIGTERM, then after graceMs (default 2 s) SIGKILL, every process in the namespaces; delete them and dir. Idempotent. */
  close(o?: { graceMs?: number }): Promise<void>;
  /** close() without the grace period, for exit handlers. */
  closeSync(): void;
}

export interface TwoNodesOptions {
  /** Default ['n1', 'n2']. */
  names?: [string, string];
  /** X of 10.77.X.0/24, 1..254; default derived from the pid. */
  subnet?: number;
  /** Default PREFIX. */
  prefix?: string;
}

export const PREFIX: string;
export const IFNAME: string;
export function which(bin: string): string | null;
export function isRunning(pid: number): boolean;
export function namespacesAvailable(): Availability;
export function cleanLeftovers(o?: { prefix?: string }): string[];
export function twoNodes(o?: TwoNodesOptions): Promise<TwoNodes>;
