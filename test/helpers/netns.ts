// Two real "nodes" on one machine for tests: network namespaces joined by one veth pair. The logic is
// in scripts/lib/two-nodes.mjs so that benchmark scripts use the same code without a build.
import type { Availability } from '../../scripts/lib/two-nodes.mjs';

export { IFNAME, PREFIX, cleanLeftovers, isRunning, namespacesAvailable, twoNodes, which } from '../../scripts/lib/two-nodes.mjs';
export type { Availability, ExecOptions, Node, NodeRef, RunOptions, RunResult, TwoNodes, TwoNodesOptions } from '../../scripts/lib/two-nodes.mjs';

/**
 * '' when every requirement holds, else the first reason, which it also prints (a skipped suite
 * should say why where the run's log shows it). For `describe.skipIf(skip !== '')`.
 */
export function skipReason(suite: string, ...requirements: Availability[]): string {
  const missing = requirements.find((r): r is { ok: false; reason: string } => !r.ok);
  if (!missing) return '';
  console.log(`skipping ${suite}: ${missing.reason}`);
  return missing.reason;
}

/** CI (.ci/run) sets SLFER_REQUIRE_CLUSTER=1: there a missing requirement fails instead of skipping. */
export const clusterRequired = process.env.SLFER_REQUIRE_CLUSTER === '1';
