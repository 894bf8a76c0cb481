#!/usr/bin/env node
// npm run test:sanitize: builds the native kernels and the Vulkan layer with AddressSanitizer and
// UndefinedBehaviorSanitizer (build/sanitize/, scripts/build-native.mjs --sanitize) and runs the tests
// that exercise their C code with them loaded: the kernel tests, the argument checks, training on
// every bad input with the native kernels, and the Vulkan layer under Dawn on lavapipe. A heap
// overflow, use after free or undefined behaviour in that C code aborts the process that hit it, and
// the test fails, instead of corrupting memory silently.
//
// libasan must be the first library of every process that loads a sanitized module, so it is
// preloaded (LD_PRELOAD) into vitest and inherited by every child it starts. node itself and the
// libraries it loads (oneDNN, Dawn, Mesa) are not instrumented: their own writes are not checked.
// oneDNN's scratchpad ends at a guard page for that reason (native/slfer-native.c).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cc = process.env.CC || 'cc';
const FILES = [
  'test/engine/native-kernels.test.ts',
  'test/engine/native-checks.test.ts',
  'test/data/bad-input.wasm-native.test.ts',
  'test/engine/gpu-select.test.ts',
  'test/cluster/launch-gpus.test.ts',
];

function die(message) {
  console.error(`test:sanitize: ${message}`);
  process.exit(1);
}

const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), '--sanitize'], { stdio: 'inherit' });
if (build.status !== 0) die('the sanitized build failed (it needs gcc, libdnnl-dev and libvulkan-dev); see above');

let libasan;
try {
  libasan = execFileSync(cc, ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
} catch (e) {
  die(`${cc} -print-file-name=libasan.so failed: ${e.message}`);
}
if (!libasan.startsWith('/') || !existsSync(libasan)) die(`${cc} has no AddressSanitizer runtime (libasan.so); install gcc's (apt-get install gcc)`);

const sanitizeDir = join(root, 'build', 'sanitize');
const env = {
  ...process.env,
  LD_PRELOAD: [libasan, process.env.LD_PRELOAD].filter(Boolean).join(':'),
  // node does not free everything at exit: leak reports would be about node, not about our code.
  ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
  SLFER_NATIVE_DIR: sanitizeDir,
  SLFER_SANITIZED: '1',
  SLFER_REQUIRE_NATIVE: '1',
  // Under CI, vitest.config.ts writes the results here instead of over npm test's.
  SLFER_TEST_RESULTS: 'test-results-sanitize.json',
};
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
console.log(`test:sanitize: ${FILES.length} test files with ${sanitizeDir} under ${libasan}`);
const r = spawnSync(process.execPath, [vitest, 'run', ...FILES], { cwd: root, env, stdio: 'inherit' });
process.exit(r.status ?? 1);
