import { Command, Option } from 'commander';
import { BACKENDS } from '../engine/backend.js';
import { exportWebModel, type ExportOptions } from '../export/export.js';
import { QUANTIZATIONS } from '../export/quantize.js';

/** The flags are export's options, as commander names them. */
type ExportFlags = Omit<ExportOptions, 'shardBytes' | 'log'>;

const pct = (x: number | undefined) => (x === undefined ? 'n/a' : `${(x * 100).toFixed(2)}%`);

/** `slfer-dist export`: the inference model as a TensorFlow.js LayersModel folder (model.json + shards) with slfer-model.json. */
export function registerExport(program: Command): void {
  program
    .command('export')
    .description('export a checkpoint for TensorFlow.js in a browser (tf.loadLayersModel): backbone + ECT, optionally ST; slfer-model.json says what the input and outputs are')
    .requiredOption('--checkpoint <dir>', 'run folder or checkpoint folder')
    .requiredOption('-o, --out <dir>', 'folder to write model.json, its weight shards and slfer-model.json into')
    .option('--with-segmentation', 'also export the segmentation head (ST): a second output, per-pixel part probabilities')
    .addOption(new Option('--quantize <dtype>', 'store the weights quantised (tfjs decodes them on load)').choices([...QUANTIZATIONS]))
    .option('--accuracy', "also print the exported model's test accuracy at float32, float16 and uint8 (reads the checkpoint's dataset)")
    .addOption(new Option('--backend <name>', 'tfjs engine (for --accuracy)').choices([...BACKENDS]))
    .action(async (f: ExportFlags) => {
      const r = await exportWebModel({ ...f, log: (l) => process.stderr.write(`${l}\n`) });
      const s = r.sidecar;
      process.stdout.write(
        `wrote ${r.dir}: SLFER ${s.variant} (${s.segmentation ? 'backbone + ECT + ST' : 'backbone + ECT'}), ${s.quantization === 'none' ? 'float32' : s.quantization} weights, ${(s.weightBytes / 2 ** 20).toFixed(2)} MiB in ${r.files.length - 2} shard(s)\n`,
      );
      const S = s.input.preprocessing.cropSize;
      process.stdout.write(`  input: [N, ${S}, ${S}, 3] NHWC RGB float32: resize to ${s.input.preprocessing.resize}x${s.input.preprocessing.resize}, centre crop ${S}, (byte/255 - mean) / std with mean [${s.input.mean.join(', ')}], std [${s.input.std.join(', ')}] (${r.dir}/slfer-model.json)\n`);
      if (s.testAccuracy) process.stdout.write(`test accuracy: float32 ${pct(s.testAccuracy.float32)}, float16 ${pct(s.testAccuracy.float16)}, uint8 ${pct(s.testAccuracy.uint8)}\n`);
    });
}
