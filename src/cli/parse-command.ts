import { Command, Option } from 'commander';
import { readRafDb } from '../data/rafdb.js';
import { readSfew } from '../data/sfew.js';
import { BACKENDS, type BackendRequest } from '../engine/backend-names.js';
import { DEFAULT_INPUT_SIZE } from '../parse/bisenet-maker.js';
import { parse, PARSE_METHODS, type ParseDataset, type ParseMethod } from '../parse/parse.js';
import { writePreview } from '../parse/preview.js';
import { stopOnCtrlC } from './interrupt.js';
import { int } from './parsers.js';
import { countProgress } from './progress.js';

interface ParseFlags {
  data: string;
  dataset?: ParseDataset;
  method: ParseMethod;
  weights?: string;
  overwrite?: boolean;
  inputSize: number;
  backend: BackendRequest;
  threads?: number;
  preview?: string;
  previewCount: number;
}

/** `slfer-dist parse`: one call in the CLI's program builder. */
export function registerParse(program: Command): void {
  program
    .command('parse')
    .description('write the semantic masks SLFER trains on (19 face-parsing classes per pixel) for every image of a RAF-DB or SFEW dataset')
    .requiredOption('--data <dir>', 'dataset folder (RAF-DB or SFEW 2.0 layout)')
    .addOption(new Option('--dataset <kind>', 'its layout (default: guessed from the folder)').choices(['rafdb', 'sfew']))
    .addOption(new Option('--method <name>', 'bisenet: face parsing with BiSeNet weights (the paper\'s labels); landmarks: from a face mesh, no weights (not the paper\'s protocol)').choices([...PARSE_METHODS]).default('bisenet'))
    .option('--weights <file>', "BiSeNet's PyTorch state dict: face-parsing.PyTorch's 79999_iter.pth")
    .option('--overwrite', 'remake masks that are already there (default: keep them, so a rerun resumes)')
    .option('--input-size <px>', 'side BiSeNet sees, a multiple of 32', int('--input-size'), DEFAULT_INPUT_SIZE)
    .addOption(new Option('--backend <name>', 'tfjs engine').choices([...BACKENDS]).default('auto'))
    .option('--threads <n>', "threads for the landmarks method's engine", int('--threads'))
    .option('--preview <file.png>', 'also write a grid of a few images with their 19-class mask, 8-part aggregate and top-4 CT parts (as the paper\'s Fig. 5)')
    .option('--preview-count <n>', 'images in the preview', int('--preview-count'), 6)
    .action(async (f: ParseFlags) => {
      const interrupt = stopOnCtrlC('stopping after this image (masks written so far are whole and are kept; rerun to continue)');
      const bar = countProgress(process.stderr);
      try {
        const { preview: _preview, previewCount: _count, ...options } = f;
        const r = await parse({
          ...options,
          signal: interrupt.signal,
          events: {
            log: (l) => {
              bar.end();
              process.stderr.write(`${l}\n`);
            },
            image: (p) => bar.update(p.done, p.total, p.seconds, p.skipped ? `${p.skipped} skipped` : ''),
          },
        });
        bar.end();
        const rate = (r.written + r.skipped.length) / Math.max(r.seconds, 1e-9);
        const lines = [
          `${r.interrupted ? 'interrupted: ' : ''}wrote ${r.written} masks, kept ${r.kept}, skipped ${r.skipped.length} of ${r.images} ${r.dataset} images${r.seconds ? ` in ${r.seconds.toFixed(1)} s (${rate.toFixed(2)} img/s)` : ''}`,
        ];
        if (r.skipped.length) {
          lines.push(`skipped ${r.skipped.length} image(s):`);
          for (const s of r.skipped.slice(0, 20)) lines.push(`  ${s.path}: ${s.reason}`);
          if (r.skipped.length > 20) lines.push(`  … and ${r.skipped.length - 20} more (parse.json lists all)`);
        }
        if (r.written || r.skipped.length) lines.push(`parse.json: ${r.parseFile}`);
        if (f.preview) {
          const splits = r.dataset === 'rafdb' ? readRafDb(r.root) : readSfew(r.root);
          const shown = await writePreview({ samples: [...splits.train, ...splits.test], file: f.preview, count: f.previewCount });
          lines.push(shown ? `preview: ${f.preview} (${shown} images)` : 'preview: no image has a readable mask yet, so none was written');
        }
        process.stdout.write(lines.join('\n') + '\n');
        if (r.interrupted) process.exitCode = 130;
      } finally {
        bar.end();
        interrupt.release();
      }
    });
}
