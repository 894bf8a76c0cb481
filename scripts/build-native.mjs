#!/usr/bin/env node
// Builds slfer-dist's two optional native pieces into build/:
// - the kernels (native/slfer-native.c -> build/slfer-native.node): convolutions on oneDNN for the
//   wasm engine. Needs a C compiler and oneDNN's headers and library (Debian/Ubuntu:
//   `apt-get install gcc libdnnl-dev`).
// - the Vulkan layer (native/slfer-vk-device-select.c -> build/vk-layer/): lets each worker of
//   `launch --gpus N` open its own GPU on the webgpu engine. Needs a C compiler and the Vulkan
//   headers (`apt-get install gcc libvulkan-dev`, or VULKAN_SDK).
// With --optional (what `npm install` runs) a machine without a prerequisite gets one line per piece
// saying what is missing and carries on; without it, a missing prerequisite is an error. Name a
// piece (`kernels` or `vk-layer`) to build only that one. SLFER_NATIVE=off builds neither.
// --sanitize builds them with AddressSanitizer and UndefinedBehaviorSanitizer into build/sanitize/
// instead (npm run test:sanitize loads them from there, under libasan).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const optional = process.argv.includes('--optional');
const sanitize = process.argv.includes('--sanitize');
const outDir = join(root, 'build', ...(sanitize ? ['sanitize'] : []));
// Sanitized builds: debug info and frame pointers for readable reports; every UB check aborts.
const optimise = sanitize ? ['-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=all'] : ['-O2'];
const named = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const cc = process.env.CC || 'cc';

/** A prerequisite is missing: why, and what to do. */
class Missing extends Error {
  constructor(reason, remedy) {
    super(reason);
    this.remedy = remedy;
  }
}

function common() {
  if (process.env.SLFER_NATIVE === 'off') throw new Missing('SLFER_NATIVE=off', 'Unset it to build them.');
  if (process.platform !== 'linux') throw new Missing(`platform ${process.platform} is not supported yet`, 'Linux only for now.');
  try {
    execFileSync(cc, ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Missing(`no C compiler (${cc})`, 'Install one (apt-get install gcc) and run `npm run build:native`.');
  }
}

/** Compiles to a temporary file and renames it: a half-written library never sits where it is loaded. */
function compile(out, args) {
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    execFileSync(cc, [...args, '-o', tmp], { stdio: ['ignore', 'inherit', 'inherit'] });
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Missing(`${cc} failed (${e.status ?? e.message})`, 'See the compiler output above.');
  }
}

const pieces = {
  kernels: {
    what: 'slfer-dist native kernels',
    without: 'The wasm engine runs without them (XNNPACK convolutions).',
    build() {
      common();
      let napiInclude;
      try {
        napiInclude = join(dirname(createRequire(import.meta.url).resolve('node-api-headers/package.json')), 'include');
      } catch {
        throw new Missing('the node-api-headers package is missing', 'Run `npm install`.');
      }
      const dnnlRoot = process.env.DNNL_ROOT;
      const dnnlHeader = ['/usr/include/oneapi/dnnl/dnnl.h', '/usr/local/include/oneapi/dnnl/dnnl.h'].find(existsSync);
      if (!dnnlHeader && !dnnlRoot) {
        throw new Missing('oneDNN headers not found', 'Install oneDNN (apt-get install libdnnl-dev) or set DNNL_ROOT, then run `npm run build:native`.');
      }
      const out = join(outDir, 'slfer-native.node');
      compile(out, [
        ...optimise,
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
        '-ldnnl',
        '-lm',
      ]);
      return out;
    },
  },
  'vk-layer': {
    what: 'slfer-dist Vulkan device-select layer',
    without: 'The webgpu engine runs without it, but cannot be given one GPU of several (SLFER_VK_DEVICE, launch --gpus).',
    build() {
      common();
      const sdk = process.env.VULKAN_SDK;
      const header = [...(sdk ? [join(sdk, 'include')] : []), '/usr/include', '/usr/local/include'].find((d) => existsSync(join(d, 'vulkan', 'vk_layer.h')));
      if (!header) {
        throw new Missing('Vulkan headers (vulkan/vk_layer.h) not found', 'Install them (apt-get install libvulkan-dev) or set VULKAN_SDK, then run `npm run build:native`.');
      }
      const dir = join(outDir, 'vk-layer');
      const lib = 'libVkLayer_SLFER_device_select.so';
      // -Bsymbolic: the layer's own calls never bind to the loader's same-named vk* exports.
      compile(join(dir, lib), [
        ...optimise,
        '-std=c11',
        '-fPIC',
        '-shared',
        '-pthread',
        '-Wall',
        '-Wextra',
        '-Werror',
        '-fvisibility=hidden',
        '-Wl,-Bsymbolic',
        '-Wl,--no-undefined',
        `-I${header}`,
        join(root, 'native', 'slfer-vk-device-select.c'),
      ]);
      const manifest = {
        file_format_version: '1.1.0',
        layer: {
          name: 'VK_LAYER_SLFER_device_select',
          type: 'GLOBAL',
          library_path: `./${lib}`,
          api_version: '1.3.0',
          implementation_version: '1',
          description: 'slfer-dist: exposes only the physical device named by SLFER_VK_DEVICE',
        },
      };
      const json = join(dir, 'VkLayer_SLFER_device_select.json');
      writeFileSync(`${json}.tmp`, JSON.stringify(manifest, null, 2) + '\n');
      renameSync(`${json}.tmp`, json);
      return dir;
    },
  },
};

const unknown = named.filter((n) => !(n in pieces));
if (unknown.length) {
  console.error(`build-native: unknown piece ${unknown.join(', ')} (pieces: ${Object.keys(pieces).join(', ')})`);
  process.exit(1);
}
let failed = false;
for (const [name, piece] of Object.entries(pieces)) {
  if (named.length && !named.includes(name)) continue;
  try {
    console.log(`${piece.what} built: ${piece.build()}`);
  } catch (e) {
    if (!(e instanceof Missing)) throw e;
    const msg = `${piece.what} not built: ${e.message}. ${e.remedy}`;
    if (optional) console.log(`${msg} ${piece.without}`);
    else console.error(msg);
    failed = true;
  }
}
process.exit(failed && !optional ? 1 : 0);
