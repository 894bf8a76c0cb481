import type { Command } from 'commander';
import { serve } from '../serve/server.js';
import { int } from './parsers.js';

/** `slfer-dist serve`: the demo page over node:http; the model runs in the browser, not here. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve a page that runs an exported model (slfer-dist export) in the browser: choose or drop a face image, see the 7 expression probabilities (and the part mask when ST was exported)')
    .requiredOption('--model <dir>', 'an exported model folder (model.json + slfer-model.json)')
    .option('--port <n>', 'port (0: any free port)', int('--port', { min: 0 }), 0)
    .option('--host <addr>', 'address to bind (default 127.0.0.1: this machine only)', '127.0.0.1')
    .action(async (f: { model: string; port: number; host: string }) => {
      const s = await serve({ model: f.model, port: f.port, host: f.host });
      process.stdout.write(`serving ${f.model} at ${s.url} (Ctrl-C to stop)\n`);
      // Until Ctrl-C or SIGTERM; then close the listener and return normally.
      await new Promise<void>((done) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void s.close().then(done);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
