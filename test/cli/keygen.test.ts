import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readRunKey } from '../../cluster/security/run-key.js';
import { runCli } from '../helpers/cli.js';

// Runs the built CLI: `npx tsc -p tsconfig.json` first.
const dir = mkdtempSync(join(tmpdir(), 'slfer-keygen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('slfer-dist keygen', () => {
  it('writes a 0600 run key, prints where and its public key (never the secret one), and the Kubernetes hint', () => {
    const file = join(dir, 'run.key');
    const r = runCli(['keygen', '--out', file], { timeoutMs: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const key = readRunKey(file);
    expect(r.stdout).toContain(`wrote run key ${file} (mode 0600)`);
    expect(r.stdout).toContain(`public key: ${key.publicKey}`);
    expect(r.stdout).toContain(`--auth-key ${file}`);
    expect(r.stdout).toContain(`kubectl create secret generic slfer-run-key --from-file=run.key=${file}`);
    expect(r.stdout + r.stderr).not.toContain(key.secretKey);
  });

  it('refuses to overwrite a key without --force, and replaces it with', () => {
    const file = join(dir, 'again.key');
    expect(runCli(['keygen', '-o', file], { timeoutMs: 60_000 }).status).toBe(0);
    const first = readFileSync(file, 'utf8');
    const again = runCli(['keygen', '-o', file], { timeoutMs: 60_000 });
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('error SLFER_RUN_KEY_EXISTS');
    expect(again.stderr).toContain('--force');
    expect(readFileSync(file, 'utf8')).toBe(first);
    const forced = runCli(['keygen', '-o', file, '--force'], { timeoutMs: 60_000 });
    expect(forced.status, forced.stderr).toBe(0);
    expect(readFileSync(file, 'utf8')).not.toBe(first);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('needs --out', () => {
    const r = runCli(['keygen'], { timeoutMs: 60_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("required option '-o, --out <file>' not specified");
  });
});
