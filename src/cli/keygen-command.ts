import { resolve } from 'node:path';
import type { Command } from 'commander';
import { writeRunKey } from '../../cluster/security/run-key.js';

/** `slfer-dist keygen`: a new run key (one CURVE keypair for every process of a run), written 0600. */
export function registerKeygen(program: Command): void {
  program
    .command('keygen')
    .description('make a run key for multi-machine runs: one CURVE keypair that every process of the run gets with --auth-key FILE (written with mode 0600)')
    .requiredOption('-o, --out <file>', 'key file to create')
    .option('--force', 'replace an existing key file (every process of the run must then get the new one)')
    .action((f: { out: string; force?: boolean }) => {
      const file = resolve(f.out);
      const key = writeRunKey(file, { force: f.force });
      // Never the secret key: the file is the only copy a terminal log should not have.
      process.stdout.write(`wrote run key ${file} (mode 0600)\n  public key: ${key.publicKey}\n`);
      process.stdout.write(`  pass --auth-key ${file} to every process of the run; on Kubernetes: kubectl create secret generic slfer-run-key --from-file=run.key=${file} (mount it with defaultMode: 0400)\n`);
    });
}
