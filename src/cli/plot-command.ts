import { Option, type Command } from 'commander';
import { BACKENDS, type BackendRequest } from '../engine/backend.js';
import { errors } from '../errors.js';
import { plotRun } from '../plot/plot-run.js';
import { DEFAULT_TSNE } from '../plot/tsne.js';
import { int, num } from './parsers.js';

interface PlotFlags {
  tsne?: boolean;
  perplexity?: number;
  seed?: number;
  iterations?: number;
  data?: string;
  backend?: BackendRequest;
}

/** `slfer-dist plot RUN [--tsne]`: the run's figures, drawn again or for the first time. */
export function registerPlot(program: Command): void {
  program
    .command('plot')
    .description('draw a run\'s figures into its folder: training curves (curves.svg/.png) from metrics.jsonl; with --tsne the t-SNE of ECT\'s features of the test split (tsne.svg/.png/.json)')
    .argument('<run>', 'run folder')
    .option('--tsne', 'also the t-SNE of the test split\'s ECT features, from the best checkpoint (the paper\'s Fig. 4)')
    .option('--perplexity <p>', `t-SNE perplexity (default ${DEFAULT_TSNE.perplexity}; capped below a third of the test images)`, num('--perplexity'))
    .option('--seed <n>', `t-SNE seed: the same seed, the same picture (default ${DEFAULT_TSNE.seed})`, int('--seed'))
    .option('--iterations <n>', `t-SNE gradient steps (default ${DEFAULT_TSNE.iterations})`, int('--iterations', { min: 1 }))
    .option('--data <dir>', '--tsne reads the test split from here instead of where the run trained (same layout)')
    .addOption(new Option('--backend <name>', 'tfjs engine for --tsne\'s forward pass').choices([...BACKENDS]))
    .action(async (run: string, f: PlotFlags) => {
      if (!f.tsne) {
        const given = (['perplexity', 'seed', 'iterations', 'data', 'backend'] as const).find((k) => f[k] !== undefined);
        if (given) throw errors.invalidArgument(`--${given}`, 'sets up the t-SNE, and --tsne is not given', 'add --tsne, or leave it out');
      }
      const r = await plotRun({
        run,
        tsne: f.tsne ? { perplexity: f.perplexity ?? DEFAULT_TSNE.perplexity, seed: f.seed ?? DEFAULT_TSNE.seed, iterations: f.iterations ?? DEFAULT_TSNE.iterations } : undefined,
        data: f.data,
        backend: f.backend,
        log: (l) => process.stderr.write(`${l}\n`),
      });
      if (r.curves) process.stdout.write(`wrote ${r.curves.svg} and ${r.curves.png}\n`);
      if (r.tsne) process.stdout.write(`wrote ${r.tsne.svg}, ${r.tsne.png} and ${r.tsne.json} (${r.tsne.points} test images)\n`);
    });
}
