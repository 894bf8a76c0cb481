import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { mergeConfig, readConfigFile, resolveConfig, type ConfigInput } from '../config.js';
import { synthesize } from '../data/synth/synthesize.js';
import { BACKENDS, releaseEngine, type BackendRequest } from '../engine/backend.js';
import { errors, isSlferError } from '../errors.js';
import { VARIANTS } from '../model/config.js';
import { evaluate, predict } from '../train/evaluate.js';
import type { Report } from '../train/run-files.js';
import { train } from '../train/trainer.js';
import { DEFAULT_BUCKET_BYTES } from '../../cluster/collective/buckets.js';
import { launchThisProcess } from '../../cluster/launch-process.js';
import { EXPERIMENTS, type ExperimentKind } from '../experiment/plan.js';
import { formatResults } from '../experiment/results.js';
import { runExperiment } from '../experiment/run-experiment.js';
import { EXIT_RETRYABLE, isRetryable } from '../../cluster/failure-policy.js';
import { benchScaling } from '../../cluster/bench/scaling.js';
import { registerBenchAllReduce } from '../../cluster/bench/cli.js';
import { benchTrain } from '../train/bench-train.js';
import { packageRoot } from '../util/package-root.js';
import { registerConvert } from './convert-command.js';
import { registerExport } from './export-command.js';
import { registerServe } from './serve-command.js';
import { registerKeygen } from './keygen-command.js';
import { EXIT_TERMINATED, stopOnCtrlC, terminated } from './interrupt.js';
import { progressReporter } from './progress.js';
import { registerParse } from './parse-command.js';
import { int, num, numList } from './parsers.js';
import { registerPlot } from './plot-command.js';

/** configs/ ships in the package root, beside dist/ (and beside .gpu/, the GPU-machine bundle). */
export const DEFAULT_CONFIG = join(packageRoot(import.meta.url), 'configs', 'synthetic.json');


interface TrainFlags {
  config?: string;
  data?: string;
  dataset?: 'rafdb' | 'sfew' | 'synthetic';
  variant?: (typeof VARIANTS)[number];
  backend?: BackendRequest;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  width?: number;
  inputSize?: number;
  resize?: number;
  seed?: number;
  threads?: number;
  out?: string;
  resume?: string;
  skipMissingMasks?: boolean;
  pretrained?: string;
  allowWorldSizeChange?: boolean;
  checkpointEvery?: number;
}

/** Flags overlay the config file field by field; an unset flag leaves the file's value. */
function flagsToConfig(f: TrainFlags): ConfigInput {
  return {
    data: { dataset: f.dataset, root: f.data, resize: f.resize, threads: f.threads, skipMissingMasks: f.skipMissingMasks },
    model: { variant: f.variant, width: f.width, inputSize: f.inputSize, pretrained: f.pretrained },
    train: { epochs: f.epochs, batchSize: f.batchSize, lr: f.lr, seed: f.seed, checkpointEvery: f.checkpointEvery },
    engine: { backend: f.backend },
  };
}

function printReport(r: Report, where?: string): void {
  const lines = [
    `test accuracy ${(r.accuracy * 100).toFixed(2)}% (mean class accuracy ${(r.meanClassAccuracy * 100).toFixed(2)}%) on ${r.count} ${r.dataset} test images`,
    ...r.classNames.map((c) => {
      const a = r.perClassAccuracy[c];
      return `  ${c.padEnd(10)} ${a === null ? '   n/a' : `${(a * 100).toFixed(1).padStart(5)}%`}`;
    }),
  ];
  if (r.skipped.length) {
    lines.push(`skipped ${r.skipped.length} file(s):`);
    for (const s of r.skipped.slice(0, 20)) lines.push(`  ${s.path}: ${s.reason}`);
    if (r.skipped.length > 20) lines.push(`  … and ${r.skipped.length - 20} more (report.json lists all)`);
  }
  if (where) lines.push(`report: ${where}`);
  process.stdout.write(lines.join('\n') + '\n');
}

/** The options train and launch share: the config file and the fields flags may override. */
function withTrainingOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'JSON config (partial; paper defaults fill the rest)', DEFAULT_CONFIG)
    .option('--data <dir>', 'dataset folder (RAF-DB or SFEW layout; for synthetic, where to generate it)')
    .addOption(new Option('--dataset <kind>', 'dataset layout').choices(['rafdb', 'sfew', 'synthetic']))
    .addOption(new Option('--variant <name>', 'ablation variant (paper Table 1)').choices([...VARIANTS]))
    .addOption(new Option('--backend <name>', 'tfjs engine').choices([...BACKENDS]))
    .option('--epochs <n>', 'epochs to train', int('--epochs'))
    .option('--batch-size <n>', 'images per step (per worker with launch)', int('--batch-size'))
    .option('--lr <x>', 'initial learning rate', num('--lr'))
    .option('--width <x>', 'channel multiplier (1 = the paper network)', num('--width'))
    .option('--input-size <px>', 'crop side, a multiple of 32', int('--input-size'))
    .option('--resize <px>', 'resize side before cropping', int('--resize'))
    .option('--seed <n>', 'seed for initialisation, order and augmentation', int('--seed'))
    .option('--threads <n>', 'image decoding threads (per worker with launch)', int('--threads'))
    .option('--skip-missing-masks', 'drop images without a semantic mask instead of stopping')
    .option('--pretrained <file.pth>', 'start the backbone from a PyTorch ResNet18 checkpoint (torchvision names; e.g. resnet18_msceleb.pth)')
    .option('--checkpoint-every <steps>', 'also checkpoint every STEPS steps within an epoch, so a restart repeats at most that many (default: at the end of each epoch only)', int('--checkpoint-every', { min: 1 }))
    .option('-o, --out <dir>', 'run folder (default runs/<timestamp>)')
    .option('--allow-world-size-change', 'resume a checkpoint with another number of processes than trained it (not bitwise equal to an unchanged run)')
    .option('--resume <dir|auto>', "continue a run from its newest checkpoint, mid-epoch ones included (a run or checkpoint folder); 'auto': continue --out's run if it has a checkpoint, else start it");
}

/** The config file overlaid with the flags; a bad field is reported against the file it is in. */
function configFromFlags(flags: TrainFlags, cmd: Command): ConfigInput {
  const fromFile = cmd.getOptionValueSource('config') === 'default' && !existsSync(flags.config!) ? {} : readConfigFile(flags.config!);
  resolveConfig(fromFile, flags.config);
  const merged = mergeConfig(fromFile, flagsToConfig(flags)) as ConfigInput;
  // Absolute, so launch's workers and a later --resume find it whatever their working folder.
  if (merged.model?.pretrained) merged.model.pretrained = resolve(merged.model.pretrained);
  return merged;
}

interface LaunchFlags extends TrainFlags {
  gpus?: number;
  workers?: number;
  maxRestarts: number;
  nnodes?: number;
  nodeRank?: number;
  nprocPerNode?: number;
  rdzvEndpoint?: string;
  runId?: string;
  authKey?: string;
  insecure?: boolean;
  port?: number;
  transport: 'tcp' | 'ipc';
  bucketMb: number;
  fp16Gradients?: boolean;
}

export function buildProgram(): Command {
  const program = new Command('slfer-dist')
    .description('Train and run SLFER (SE-ResNet18 + segmentation and part-presence tasks) for facial expression recognition on TensorFlow.js')
    .showHelpAfterError();

  withTrainingOptions(program.command('train').description('train SLFER in this process (default: the synthetic dataset, proposed variant, best engine available)'))
    .action(async (flags: TrainFlags, cmd: Command) => {
      const config = configFromFlags(flags, cmd);
      const interrupt = stopOnCtrlC('stopping after this step (Ctrl-C again to quit now; checkpoints are never half-written)');
      try {
        const r = await train({ config, out: flags.out, resume: flags.resume, allowWorldSizeChange: flags.allowWorldSizeChange, signal: interrupt.signal, events: progressReporter() });
        printReport(r.report, join(r.runDir, 'report.json'));
        process.stdout.write(`run folder: ${r.runDir} (metrics.jsonl, checkpoints/, confusion-matrix.png, curves.png)\n`);
      } finally {
        interrupt.release();
      }
    });

  withTrainingOptions(
    program
      .command('experiment')
      .argument('<kind>', `${EXPERIMENTS.join(', ')}: the paper's Table 1 (the five variants), Table 3 (λ1, λ2) or Fig. 3 (n)`)
      .description("train every row of one of the paper's tables, once per seed, under one experiment folder (--out; running again continues it), then write results.md and results.json beside the paper's numbers")
      .option('--seeds <k>', 'runs per row (seeds config, +1, ...): mean ± standard deviation', int('--seeds', { min: 1 }), 1)
      .option('--lambda1 <list>', "experiment lambda: λ1 (ST loss weight) values, with λ2 = 0.5 (default: the paper's 0,0.001,0.1,0.5,1)", numList('--lambda1'))
      .option('--lambda2 <list>', 'experiment lambda: λ2 (CT loss weight) values, with λ1 = 0.5 (default: the same)', numList('--lambda2'))
      .option('--n <list>', "experiment topn: numbers of dominant components (default 1,...,8)", numList('--n'))
      .option('--launch', 'train each run with launch (its workers: --workers N, or --gpus N)')
      .option('--gpus <n>', 'with --launch: one worker per GPU', int('--gpus'))
      .option('--workers <n>', 'with --launch: CPU workers', int('--workers')),
  ).action(async (kind: string, flags: TrainFlags & { seeds: number; lambda1?: number[]; lambda2?: number[]; n?: number[]; launch?: boolean; gpus?: number; workers?: number }, cmd: Command) => {
    if (!(EXPERIMENTS as readonly string[]).includes(kind)) throw errors.invalidArgument('experiment', `"${kind}" is not one`, `choose ${EXPERIMENTS.join(', ')}`);
    for (const [flag, v] of [['--variant', flags.variant], ['--resume', flags.resume]] as const) {
      if (v !== undefined) throw errors.invalidArgument(flag, 'does not apply to an experiment', flag === '--variant' ? 'its rows set the variant' : 'run the same command again: finished runs are kept and a half-finished one continues');
    }
    if (!flags.launch && (flags.gpus !== undefined || flags.workers !== undefined)) throw errors.invalidArgument(flags.gpus !== undefined ? '--gpus' : '--workers', 'needs --launch', 'add --launch to train each run with launch');
    const interrupt = stopOnCtrlC('stopping after this step (running the same command again continues the experiment)');
    const progress = progressReporter();
    try {
      const r = await runExperiment({
        kind: kind as ExperimentKind,
        config: configFromFlags(flags, cmd),
        out: flags.out,
        seeds: flags.seeds,
        plan: { lambda1: flags.lambda1, lambda2: flags.lambda2, n: flags.n },
        launch: flags.launch ? { workers: flags.workers, gpus: flags.gpus } : undefined,
        signal: interrupt.signal,
        events: {
          ...progress,
          run: (x) => process.stderr.write(`[${x.index + 1}/${x.total}] ${x.row.table}: ${x.row.label}, seed ${x.seed}: ${x.status === 'kept' ? 'finished before, kept' : x.status === 'resumed' ? 'resuming from its checkpoint' : 'training'} (${x.dir})\n`),
        },
      });
      process.stdout.write(formatResults(r));
    } finally {
      interrupt.release();
    }
  });

  withTrainingOptions(
    program
      .command('launch')
      .description('data-parallel training: one worker process per GPU (--gpus N) or N CPU workers (--workers N, the default dev mode)')
      .option('--gpus <n>', 'one worker per GPU, each pinned to its device', int('--gpus'))
      .option('--workers <n>', 'CPU worker processes (single-node dev mode; default 2)', int('--workers'))
      .option('--max-restarts <n>', 'after a lost worker, stop every worker and start again from the newest good checkpoint, up to N times', int('--max-restarts'), 0),
  )
    .option('--nnodes <n>', 'machines in the run, one `launch` agent on each (torchrun style); not needed under srun, mpirun, torchrun or Kubernetes', int('--nnodes'))
    .option('--node-rank <r>', "this machine's index, 0..nnodes-1 (node 0 hosts the coordinator)", int('--node-rank'))
    .option('--nproc-per-node <k>', 'workers on each machine (default: --gpus, else 1)', int('--nproc-per-node'))
    .option('--rdzv-endpoint <host:port>', "node 0's address and the coordinator's port, the same on every node (under a launcher that gives none, such as srun or mpirun: rank 0's host)")
    .option('--auth-key <file>', 'the run key (`slfer-dist keygen`, mode 0600): every socket of a run across machines uses CURVE with it')
    .option('--insecure', 'let a run across machines start without a key (plaintext sockets: only on a network you trust)')
    .option('--run-id <id>', 'names the run; every process of it must agree (default: from the launcher, or the rendezvous endpoint)')
    .addOption(new Option('--transport <kind>', 'all-reduce transport on one machine (across machines: ipc within a node, tcp between nodes)').choices(['tcp', 'ipc']).default('tcp'))
    .option('--port <n>', "coordinator's control port (default: any free port)", int('--port'))
    .option('--bucket-mb <mb>', 'gradient bucket size (MB)', num('--bucket-mb'), DEFAULT_BUCKET_BYTES / 2 ** 20)
    .option('--fp16-gradients', 'send gradients in half precision')
    .action(async (flags: LaunchFlags, cmd: Command) => {
      const config = configFromFlags(flags, cmd);
      const interrupt = stopOnCtrlC('stopping the workers (the last checkpoint stays; Ctrl-C again to quit now, and the workers follow)');
      const progress = progressReporter();
      try {
        const placementFlags = { workers: flags.workers, gpus: flags.gpus, nnodes: flags.nnodes, nodeRank: flags.nodeRank, nprocPerNode: flags.nprocPerNode, rdzvEndpoint: flags.rdzvEndpoint, port: flags.port, runId: flags.runId, authKey: flags.authKey, insecure: flags.insecure };
        const outcome = await launchThisProcess(placementFlags, {
          config,
          gpus: flags.gpus,
          workers: flags.workers,
          maxRestarts: flags.maxRestarts,
          out: flags.out,
          resume: flags.resume,
          allowWorldSizeChange: flags.allowWorldSizeChange,
          transport: flags.transport,
          port: flags.port,
          bucketMb: flags.bucketMb,
          compression: flags.fp16Gradients ? 'fp16' : 'none',
          signal: interrupt.signal,
          events: {
            ...progress,
            epochEnd: (m) => {
              progress.epochEnd?.(m);
              process.stderr.write(
                `  ${m.workers} workers: ${m.imagesPerSec.toFixed(1)} img/s global; slowest rank ${m.slowestRank}: compute ${m.computeSeconds?.toFixed(1)} s, all-reduce ${m.allReduceSeconds?.toFixed(1)} s, waiting for data ${m.dataWaitSeconds.toFixed(1)} s\n`,
              );
            },
          },
        });
        if (outcome.role !== 'coordinator') {
          process.stderr.write(`${outcome.role === 'agent' ? `node ${outcome.node}` : `rank ${outcome.rank}`}: done (rank 0 holds the run folder and the report)\n`);
          return;
        }
        const r = outcome.result;
        printReport(r.report, join(r.runDir, 'report.json'));
        process.stdout.write(`run folder: ${r.runDir} (metrics.jsonl, timings.json, checkpoints/, confusion-matrix.png, curves.png)\n`);
      } finally {
        interrupt.release();
      }
    });

  program
    .command('eval')
    .description('evaluate a trained checkpoint on its test split')
    .requiredOption('--checkpoint <dir>', 'run folder or checkpoint folder')
    .option('--data <dir>', 'evaluate on this dataset folder instead of the one trained on')
    .addOption(new Option('--dataset <kind>', 'layout of --data').choices(['rafdb', 'sfew', 'synthetic']))
    .addOption(new Option('--backend <name>', 'tfjs engine').choices([...BACKENDS]))
    .option('-o, --out <dir>', 'write report.json and the confusion matrix here')
    .option('--masks <file.png>', 'also draw the first test images with their part label and ST prediction (a variant with ST)')
    .option('--masks-count <n>', 'how many test images --masks draws (default 8)', int('--masks-count'))
    .action(async (f: { checkpoint: string; data?: string; dataset?: 'rafdb' | 'sfew' | 'synthetic'; backend?: BackendRequest; out?: string; masks?: string; masksCount?: number }) => {
      if (f.masksCount !== undefined && !f.masks) throw errors.invalidArgument('--masks-count', 'says how many images --masks draws, and --masks is not given', 'add --masks FILE.png, or leave --masks-count out');
      const r = await evaluate({
        checkpoint: f.checkpoint,
        data: f.data || f.dataset ? { root: f.data, dataset: f.dataset } : undefined,
        backend: f.backend,
        out: f.out,
        masks: f.masks ? { file: resolve(f.masks), count: f.masksCount } : undefined,
        log: (l) => process.stderr.write(`${l}\n`),
      });
      printReport(r, f.out ? join(f.out, 'report.json') : undefined);
    });

  program
    .command('predict')
    .description('predict the expression of face images')
    .requiredOption('--checkpoint <dir>', 'run folder or checkpoint folder')
    .argument('<images...>', 'image files (JPEG, PNG)')
    .addOption(new Option('--backend <name>', 'tfjs engine').choices([...BACKENDS]))
    .option('--json', 'print JSON')
    .action(async (images: string[], f: { checkpoint: string; backend?: BackendRequest; json?: boolean }) => {
      const preds = await predict({ checkpoint: f.checkpoint, images, backend: f.backend });
      if (f.json) {
        process.stdout.write(JSON.stringify(preds, null, 2) + '\n');
        return;
      }
      for (const p of preds) {
        const probs = Object.entries(p.probabilities)
          .map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`)
          .join(', ');
        process.stdout.write(`${p.image}: ${p.expression}  (${probs})\n`);
      }
    });

  registerConvert(program);

  registerPlot(program);

  registerExport(program);

  registerServe(program);

  const data = program.command('data').description('datasets');
  data
    .command('synth')
    .description('generate the synthetic face dataset in RAF-DB layout (images, labels, 19-class masks)')
    .requiredOption('-o, --out <dir>', 'folder to create')
    .option('--train <n>', 'training images', int('--train'), 2100)
    .option('--test <n>', 'test images', int('--test'), 700)
    .option('--size <px>', 'image side', int('--size'), 100)
    .option('--seed <n>', 'generator seed', int('--seed'), 0)
    .action(async (f: { out: string; train: number; test: number; size: number; seed: number }) => {
      const t0 = Date.now();
      const r = await synthesize({ out: f.out, train: f.train, test: f.test, size: f.size, seed: f.seed });
      process.stdout.write(`wrote ${r.train} train + ${r.test} test faces (${r.size}px, seed ${r.seed}) to ${r.out} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    });

  registerParse(program);

  registerKeygen(program);

  const bench = program.command('bench').description('benchmarks (commands, not tests)');
  registerBenchAllReduce(bench);
  bench
    .command('train')
    .description('training img/s of the full SLFER model on one engine (fixed batch, after warm-up)')
    .addOption(new Option('--backend <name>', 'tfjs engine').choices([...BACKENDS]).default('auto'))
    .option('--size <px>', 'input side, a multiple of 32', int('--size'), 128)
    .option('--batch <n>', 'images per step', int('--batch'), 16)
    .option('--steps <n>', 'timed steps', int('--steps'), 5)
    .option('--warmup <n>', 'untimed steps first', int('--warmup'), 2)
    .option('--width <x>', 'channel multiplier (1 = the paper network)', num('--width'), 1)
    .addOption(new Option('--variant <name>', 'ablation variant').choices([...VARIANTS]).default('proposed'))
    .option('--profile', 'also time one step per kernel (the 20 largest; all with --json)')
    .option('--json', 'print JSON')
    .action(async (f: { backend: BackendRequest; size: number; batch: number; steps: number; warmup: number; width: number; variant: (typeof VARIANTS)[number]; profile?: boolean; json?: boolean }) => {
      const r = await benchTrain(f);
      if (f.json) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        process.stdout.write(
          `${r.backend}${r.convolutions ? ` (convolutions: ${r.convolutions})` : ''}${r.slferKernels ? ` (slfer-dist kernels: ${r.slferKernels.join(', ')})` : ''}: SLFER ${r.variant} width ${r.width} (${r.parameters.toLocaleString('en-US')} parameters), ${r.size}px, batch ${r.batch}: ` +
            `train ${r.trainImagesPerSec.toFixed(2)} img/s (${r.msPerStep.toFixed(0)} ms/step), forward ${r.forwardImagesPerSec.toFixed(1)} img/s\n`,
        );
        if (r.kernels) {
          const total = r.kernels.reduce((a, k) => a + k.ms, 0);
          process.stdout.write(`one profiled step, ${total.toFixed(0)} ms in kernels:\n`);
          for (const k of r.kernels.slice(0, 20)) process.stdout.write(`  ${k.kernel.padEnd(28)} ${k.ms.toFixed(1).padStart(9)} ms  ${((100 * k.ms) / total).toFixed(1).padStart(5)}%  ${String(k.calls).padStart(5)} calls\n`);
        }
      }
    });

  bench
    .command('scaling')
    .description('training img/s of the real model per worker count (ring all-reduce), scaling efficiency, JSON and a plot')
    .option('--workers <list>', 'worker counts, comma-separated', (v: string) => v.split(',').map(Number), [1, 2, 4])
    .addOption(new Option('--backend <name>', 'tfjs engine of every worker').choices([...BACKENDS]).default('wasm'))
    .option('--size <px>', 'input side, a multiple of 32', int('--size'), 64)
    .option('--batch <n>', 'images per step per worker', int('--batch'), 16)
    .option('--steps <n>', 'timed steps', int('--steps'), 10)
    .option('--warmup <n>', 'untimed steps first', int('--warmup'), 2)
    .option('--width <x>', 'channel multiplier (1 = the paper network)', num('--width'), 0.125)
    .addOption(new Option('--variant <name>', 'ablation variant').choices([...VARIANTS]).default('proposed'))
    .addOption(new Option('--transport <kind>', 'all-reduce transport').choices(['tcp', 'ipc']).default('tcp'))
    .option('-o, --out <dir>', 'where to write scaling.json and scaling.png', 'runs/bench-scaling')
    .option('--json', 'print JSON')
    .action(async (f: { workers: number[]; backend: BackendRequest; size: number; batch: number; steps: number; warmup: number; width: number; variant: (typeof VARIANTS)[number]; transport: 'tcp' | 'ipc'; out: string; json?: boolean }) => {
      const r = await benchScaling(f);
      if (f.json) {
        process.stdout.write(JSON.stringify(r) + '\n');
        return;
      }
      process.stdout.write(`SLFER ${r.variant} width ${r.width}, ${r.size}px, batch ${r.batch} per worker, on ${r.backend}:\n`);
      process.stdout.write('workers  img/s    ms/step  compute  all-reduce  efficiency\n');
      for (const x of r.rows) {
        process.stdout.write(
          `${String(x.workers).padStart(7)}  ${x.imagesPerSec.toFixed(1).padStart(6)}  ${x.msPerStep.toFixed(0).padStart(7)}  ${x.computeMsPerStep.toFixed(0).padStart(7)}  ${x.allReduceMsPerStep.toFixed(0).padStart(10)}  ${(x.efficiency * 100).toFixed(0).padStart(9)}%\n`,
        );
      }
      process.stdout.write(`wrote ${join(f.out, 'scaling.json')} and ${join(f.out, 'scaling.png')}\n`);
    });

  return program;
}

/** Runs the CLI; SlferErrors print their code, message and what to do, and exit 1 (75, EX_TEMPFAIL, when a retry may help; 143 after a SIGTERM). */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (isSlferError(e)) {
      process.stderr.write(`${e.format()}\n`);
      // A lost process or link: a retry may help, and the code says so to whatever launched us.
      process.exitCode = terminated() ? EXIT_TERMINATED : isRetryable(e.code) ? EXIT_RETRYABLE : 1;
      return;
    }
    throw e;
  } finally {
    await releaseEngine();
  }
}
