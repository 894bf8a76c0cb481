#!/usr/bin/env node
// Builds the optional native kernels (native/slfer-native.c -> build/slfer-native.node): convolutions
// on oneDNN for the wasm engine. Needs a C compiler and oneDNN's headers and library
// (Debian/Ubuntu: `apt-get install gcc libdnnl-dev`). With --optional (what `npm install` runs) a
// machine without them gets one line saying what is missing and the pure-wasm engine; without it,
// a missing prerequisite is an error.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const optional = process.argv.includes('--optional');
const out = join(root, 'build', 'slfer-native.node');

function give(reason, remedy) {
  const msg = `slfer-dist native kernels not built: ${reason}. ${remedy}`;
  if (optional) {
    console.log(`${msg} The wasm engine runs without them (XNNPACK convolutions).`);
    process.exit(0);
  }
  console.error(msg);
  process.exit(1);
}

if (process.env.SLFER_NATIVE === 'off') give('SLFER_NATIVE=off', 'Unset it to build them.');
if (process.platform !== 'linux') give(`platform ${process.platform} is not supported yet`, 'Linux only for now.');
const cc = process.env.CC || 'cc';
try {
  execFileSync(cc, ['--version'], { stdio: 'ignore' });
} catch {
  give(`no C compiler (${cc})`, 'Install one (apt-get install gcc) and run `npm run build:native`.');
}
let napiInclude;
try {
  napiInclude = join(dirname(createRequire(import.meta.url).resolve('node-api-headers/package.json')), 'include');
} catch {
  give('the node-api-headers package is missing', 'Run `npm install`.');
}
const dnnlHeader = ['/usr/include/oneapi/dnnl/dnnl.h', '/usr/local/include/oneapi/dnnl/dnnl.h'].find(existsSync);
if (!dnnlHeader && !process.env.DNNL_ROOT) {
  give('oneDNN headers not found', 'Install oneDNN (apt-get install libdnnl-dev) or set DNNL_ROOT, then run `npm run build:native`.');
}

mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
const dnnlRoot = process.env.DNNL_ROOT;
const args = [
  '-O2',
  '-std=c11',
  '-fPIC',
  '-shared',
  '-fopenmp',
  '-Wall',
  '-Werror',
  '-fvisibility=hidden',
  `-I${napiInclude}`,
  ...(dnnlRoot ? [`-I${join(dnnlRoot, 'include')}`, `-L${join(dnnlRoot, 'lib')}`, `-Wl,-rpath,${join(dnnlRoot, 'lib')}`] : []),
  join(root, 'native', 'slfer-native.c'),
  '-o',
  tmp,
  '-ldnnl',
  '-lm',
];
try {
  execFileSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  renameSync(tmp, out); // a half-written addon never sits at the path the engine loads
} catch (e) {
  rmSync(tmp, { force: true });
  give(`${cc} failed (${e.status ?? e.message})`, 'See the compiler output above.');
}
console.log(`slfer-dist native kernels built: ${out}`);
