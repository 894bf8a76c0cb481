#!/usr/bin/env node
// The CLI lives in the compiled sources; `npm install` builds them (prepare script).
import('../dist/src/cli/main.js').then((m) => m.main(process.argv)).catch((e) => {
  process.stderr.write(`${e && e.code === 'ERR_MODULE_NOT_FOUND' ? 'slfer-dist is not built: run `npm run build` in its folder\n' : ''}${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
