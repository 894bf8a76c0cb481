import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Job } from 'kubernetes-models/batch/v1';
import { Pod } from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { writeRunKey } from '../../cluster/security/run-key.js';
import { syntheticDataset, tinyConfig } from '../helpers/synthetic.js';

/**
 * The launcher templates shipped in cluster/templates/: the Kubernetes manifests are checked against
 * the API schemas (kubernetes-models' for the core objects, the CRDs' fields for JobSet and
 * PyTorchJob), and each pod's command is run here as its controller would start it. The sbatch
 * script and the mpirun line are run for real by two-nodes.test.ts (Slurm, Open MPI).
 */
const ROOT = join(import.meta.dirname, '..', '..');
const TEMPLATES = join(ROOT, 'cluster', 'templates');
const BIN = join(ROOT, 'bin', 'slfer-dist.js');
// YAML 1.1, as Kubernetes reads manifests (sigs.k8s.io/yaml): `defaultMode: 0400` is octal there.
const load = (f: string) => parse(readFileSync(join(TEMPLATES, 'kubernetes', f), 'utf8'), { version: '1.1' }) as Record<string, unknown>;

// The fields of the CRDs these manifests use (jobset.x-k8s.io/v1alpha2, kubeflow.org/v1), strict:
// a misspelt or misplaced field fails here rather than being dropped by the API server.
const objectMeta = z.strictObject({ name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/) });
const JobSetSchema = z.strictObject({
  apiVersion: z.literal('jobset.x-k8s.io/v1alpha2'),
  kind: z.literal('JobSet'),
  metadata: objectMeta,
  spec: z.strictObject({
    failurePolicy: z.strictObject({ maxRestarts: z.number().int().nonnegative() }),
    network: z.strictObject({ enableDNSHostnames: z.boolean(), subdomain: z.string() }),
    replicatedJobs: z.array(z.strictObject({ name: z.string(), replicas: z.number().int().positive(), template: z.strictObject({ spec: z.record(z.string(), z.unknown()) }) })).min(1),
  }),
});
const replicaSpec = z.strictObject({ replicas: z.number().int().positive(), restartPolicy: z.enum(['Always', 'OnFailure', 'Never', 'ExitCode']), template: z.strictObject({ spec: z.record(z.string(), z.unknown()) }) });
const PyTorchJobSchema = z.strictObject({
  apiVersion: z.literal('kubeflow.org/v1'),
  kind: z.literal('PyTorchJob'),
  metadata: objectMeta,
  spec: z.strictObject({
    runPolicy: z.strictObject({ backoffLimit: z.number().int().nonnegative() }),
    pytorchReplicaSpecs: z.strictObject({ Master: replicaSpec, Worker: replicaSpec }),
  }),
});

interface Container {
  name: string;
  command: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }[];
  ports?: { name: string; containerPort: number }[];
  volumeMounts: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  volumes: { name: string; secret?: { defaultMode: number } }[];
}

let data: Awaited<ReturnType<typeof syntheticDataset>>;
let runKey: string;
beforeAll(async () => {
  data = await syntheticDataset({ train: 32, test: 8, size: 32 });
  runKey = join(data.base, 'secret-run.key');
  writeRunKey(runKey);
});
afterAll(() => data.cleanup());

/**
 * Runs one pod's command here: its mount paths point at local folders (the ConfigMap's config, the
 * Secret's key with the mode the manifest gives it, the dataset), env as the manifest and `inject`
 * (what the controller adds) say. Returns the exit code and output.
 */
function runPod(c: Container, mounts: Record<string, string>, inject: Record<string, string>) {
  const remap = (a: string) => Object.entries(mounts).reduce((s, [from, to]) => (s.startsWith(from) ? to + s.slice(from.length) : s), a);
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) env[e.name] = e.value ?? inject[e.valueFrom!.fieldRef.fieldPath] ?? '';
  const [cmd, ...args] = c.command;
  expect(cmd).toBe('slfer-dist');
  const child = spawn(process.execPath, [BIN, ...args.map(remap)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0', ...env, ...inject } });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr.on('data', (d: Buffer) => (text += d.toString()));
  return new Promise<{ code: number | null; text: string }>((resolve) => child.on('exit', (code) => resolve({ code, text })));
}

function podFolders(name: string, secretMode: number) {
  const base = join(data.base, name);
  const etc = join(base, 'etc-slfer');
  const key = join(base, 'etc-slfer-key');
  mkdirSync(etc, { recursive: true });
  mkdirSync(key, { recursive: true });
  writeFileSync(join(etc, 'config.json'), JSON.stringify(tinyConfig(data.root, 32, { epochs: 1, batchSize: 4 })));
  // One Secret for the whole job: every pod mounts the same run key.
  writeFileSync(join(key, 'run.key'), readFileSync(runKey));
  chmodSync(join(key, 'run.key'), secretMode);
  return { base, etc, key };
}
const freePort = () => 20_000 + Math.floor(Math.random() * 20_000);

describe('Kubernetes templates', () => {
  it('jobset.yaml is a valid JobSet whose Job template passes the batch/v1 schema, and whose names, sizes and ports agree', () => {
    const js = JobSetSchema.parse(load('jobset.yaml'));
    const rjob = js.spec.replicatedJobs[0];
    const job = new Job({ metadata: { name: `${js.metadata.name}-${rjob.name}-0` }, spec: rjob.template.spec as never });
    job.validate();
    const spec = job.spec!;
    expect(spec.completionMode).toBe('Indexed');
    const pod = spec.template.spec as unknown as PodSpec;
    const c = pod.containers[0];
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e]));
    expect(Number(env.SLFER_WORLD_SIZE.value)).toBe(spec.completions);
    expect(spec.parallelism).toBe(spec.completions);
    expect(env.SLFER_MASTER_ADDR.value).toBe(`${js.metadata.name}-${rjob.name}-0-0.${js.spec.network.subdomain}`);
    expect(c.ports?.[0].containerPort).toBe(Number(env.SLFER_MASTER_PORT.value));
    expect(env.SLFER_ATTEMPT.valueFrom?.fieldRef.fieldPath).toBe("metadata.labels['jobset.sigs.k8s.io/restart-attempt']");
    expect(pod.volumes.find((v) => v.secret)?.secret?.defaultMode).toBe(0o400);
  });

  it('pytorchjob.yaml is a valid PyTorchJob whose pod templates pass the v1 Pod schema', () => {
    const pj = PyTorchJobSchema.parse(load('pytorchjob.yaml'));
    for (const [role, r] of Object.entries(pj.spec.pytorchReplicaSpecs)) {
      const pod = new Pod({ metadata: { name: `${pj.metadata.name}-${role.toLowerCase()}-0` }, spec: r.template.spec as never });
      pod.validate();
      // The operator finds its container by this name, and the master's port by this one.
      expect(pod.spec!.containers[0].name).toBe('pytorch');
      expect((pod.spec as unknown as PodSpec).volumes.find((v) => v.secret)?.secret?.defaultMode).toBe(0o400);
    }
    expect(pj.spec.pytorchReplicaSpecs.Master.template.spec).toMatchObject({ containers: [{ ports: [{ name: 'pytorchjob-port' }] }] });
  });

  it("jobset.yaml's pods, started as the JobSet controller would (JOB_COMPLETION_INDEX, downward API, the Secret at mode 0400), train one run with rank 0 writing it", async () => {
    const js = JobSetSchema.parse(load('jobset.yaml'));
    const spec = js.spec.replicatedJobs[0].template.spec as { template: { spec: PodSpec } };
    const c = spec.template.spec.containers[0];
    const port = String(freePort());
    const pods = [0, 1].map((i) => {
      const f = podFolders(`jobset-pod-${i}`, 0o400);
      return runPod(c, { '/etc/slfer-key': f.key, '/etc/slfer': f.etc, '/data/rafdb': data.root, '/runs': join(f.base, 'runs') }, {
        JOB_COMPLETION_INDEX: String(i),
        "metadata.labels['jobset.sigs.k8s.io/restart-attempt']": '0',
        "metadata.labels['jobset.sigs.k8s.io/jobset-name']": js.metadata.name,
        // No cluster DNS here: pod 0's name is this machine, and its port a free one.
        SLFER_MASTER_ADDR: '127.0.0.1',
        SLFER_MASTER_PORT: port,
        OMP_NUM_THREADS: '1',
      });
    });
    const [p0, p1] = await Promise.all(pods);
    expect(p0.code, p0.text).toBe(0);
    expect(p1.code, p1.text).toBe(0);
    expect(p0.text).toContain('launched 2 workers');
    expect(p1.text).toContain('rank 1 of 2 (indexed-job, attempt 0)');
    expect(existsSync(join(data.base, 'jobset-pod-0', 'runs', 'slfer', 'report.json'))).toBe(true);
    expect(existsSync(join(data.base, 'jobset-pod-1', 'runs', 'slfer'))).toBe(false);
  }, 180_000);

  it("pytorchjob.yaml's pods, with the variables the training operator sets, train one run; a Secret mounted 0644 is refused with the fix", async () => {
    const pj = PyTorchJobSchema.parse(load('pytorchjob.yaml'));
    const port = String(freePort());
    const roles = [pj.spec.pytorchReplicaSpecs.Master, pj.spec.pytorchReplicaSpecs.Worker];
    const pods = roles.map((r, rank) => {
      const c = (r.template.spec as unknown as PodSpec).containers[0];
      const f = podFolders(`pytorchjob-pod-${rank}`, 0o400);
      return runPod(c, { '/etc/slfer-key': f.key, '/etc/slfer': f.etc, '/data/rafdb': data.root, '/runs': join(f.base, 'runs') }, { RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, OMP_NUM_THREADS: '1' });
    });
    const [p0, p1] = await Promise.all(pods);
    expect(p0.code, p0.text).toBe(0);
    expect(p1.code, p1.text).toBe(0);
    expect(p1.text).toContain('rank 1 of 2 (kubeflow, attempt 0)');
    // The same pod with the Secret's default mode (0644): refused before anything starts.
    const c = (roles[0].template.spec as unknown as PodSpec).containers[0];
    const f = podFolders('pytorchjob-open-key', 0o644);
    const bad = await runPod(c, { '/etc/slfer-key': f.key, '/etc/slfer': f.etc, '/data/rafdb': data.root, '/runs': join(f.base, 'runs') }, { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: '10.11.12.13', MASTER_PORT: port });
    expect(bad.code).toBe(1);
    expect(bad.text).toMatch(/SLFER_RUN_KEY_UNSAFE/);
    expect(bad.text).toMatch(/chmod 600|defaultMode/);
  }, 180_000);
});

describe('Slurm and MPI templates', () => {
  it('are valid bash, and name the flags slfer-dist has', () => {
    for (const f of ['slurm/slfer.sbatch', 'mpi/mpirun.sh']) {
      const r = spawnSync('bash', ['-n', join(TEMPLATES, f)], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    }
    const help = spawnSync(process.execPath, [BIN, 'launch', '--help'], { encoding: 'utf8' }).stdout;
    const sbatch = readFileSync(join(TEMPLATES, 'slurm', 'slfer.sbatch'), 'utf8');
    for (const flag of sbatch.match(/--(?:resume|rdzv-endpoint|auth-key|insecure|config|out)\b/g) ?? []) expect(help).toContain(flag);
  });
});
