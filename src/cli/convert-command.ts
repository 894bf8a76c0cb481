import { Command, Option } from 'commander';
import { mergeConfig, readConfigFile, type ConfigInput } from '../config.js';
import { selectBackend } from '../engine/backend.js';
import { convertFromTorch, convertToTorch } from '../train/convert.js';
import { int } from './parsers.js';


interface ConvertFlags {
  out: string;
  toTorch?: boolean;
  config?: string;
  inputSize?: number;
  data?: string;
  dataset?: 'rafdb' | 'sfew' | 'synthetic';
  seed?: number;
}

/** `slfer-dist convert`: a whole SLFER model from PyTorch's state dict to a run folder, or back (--to-torch). */
export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('a whole SLFER model between PyTorch and slfer-dist: FILE.pth (scripts/peers/slfer_torch_model.py state dict) to a run folder, or --to-torch CHECKPOINT to FILE.pth')
    .argument('<input>', 'a .pth state dict (zip or legacy), or with --to-torch a run or checkpoint folder')
    .requiredOption('-o, --out <path>', 'run folder to create (from torch), or .pth file to write (--to-torch)')
    .option('--to-torch', 'write a state dict that the PyTorch reference model loads with strict=True')
    .option('-c, --config <file>', 'the run config the converted model belongs to (data, loss, schedule)')
    .option('--input-size <px>', 'crop side the model runs at (a state dict does not say; default 224)', int('--input-size'))
    .option('--data <dir>', 'dataset folder eval and training use')
    .addOption(new Option('--dataset <kind>', 'layout of --data').choices(['rafdb', 'sfew', 'synthetic']))
    .option('--seed <n>', 'train.seed of the converted run', int('--seed'))
    .action(async (input: string, f: ConvertFlags) => {
      // Tensors are only copied: the reference engine will do, without probing for a faster one.
      await selectBackend('cpu');
      if (f.toTorch) {
        const r = convertToTorch(input, f.out);
        process.stdout.write(`wrote ${r.file}: ${r.tensors} tensors of SLFER ${r.variant} (load with SLFER(variant='${r.variant}').load_state_dict(torch.load(path), strict=True))\n`);
        return;
      }
      const fromFile = f.config ? readConfigFile(f.config) : {};
      const flags: ConfigInput = { model: { inputSize: f.inputSize }, data: { root: f.data, dataset: f.dataset }, train: { seed: f.seed } };
      const r = await convertFromTorch(input, { out: f.out, config: mergeConfig(fromFile, flags) as ConfigInput });
      process.stdout.write(`wrote ${r.runDir}: SLFER ${r.variant}, ${r.tensors} tensors, checkpoint ${r.checkpoint}\n`);
      process.stdout.write(`  evaluate: slfer-dist eval --checkpoint ${r.runDir}; fine-tune: slfer-dist train --resume ${r.runDir} --epochs N\n`);
    });
}
