/**
 * Where the optional package @vladmandic/human is, without loading it (it is large, and only
 * `parse --method landmarks` needs it). Its `exports` map names its files without "./", which Node
 * reads as conditions, so its Node build for wasm cannot be imported by name: it is found from the
 * package's main entry (resolved, not run) and loaded by path. That build requires
 * @tensorflow/tfjs-core, -converter and -backend-wasm, which resolve to slfer-dist's own 4.22.0.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { errors } from '../errors.js';

export const HUMAN_PACKAGE = '@vladmandic/human';
/** The version package.json pins; another one is used if that is what is installed, and recorded. */
export const HUMAN_VERSION = '3.3.6';

export interface HumanPackage {
  version: string;
  /** dist/human.node-wasm.js: human with tfjs on wasm, no tfjs-node. */
  entry: string;
  /** Its models/ folder (blazeface, facemesh, iris...). */
  modelsDir: string;
  /** @tensorflow/tfjs-backend-wasm's dist/, where its .wasm binaries are. */
  wasmDir: string;
  wasmVersion: string;
}

const ALTERNATIVE = 'label with BiSeNet instead (`slfer-dist parse --method bisenet --weights 79999_iter.pth`)';

/** `name` is the package to look for; other than HUMAN_PACKAGE only in tests, to see the error. */
export function findHumanPackage(name = HUMAN_PACKAGE): HumanPackage {
  const require = createRequire(import.meta.url);
  let main: string;
  try {
    main = require.resolve(name);
  } catch (e) {
    throw errors.optionalPackageMissing(name, HUMAN_VERSION, '`parse --method landmarks`', `it is not installed (${(e as Error).message.split('\n')[0]})`, ALTERNATIVE);
  }
  // main is <root>/dist/human.node.js
  const root = dirname(dirname(main));
  const entry = join(root, 'dist', 'human.node-wasm.js');
  const modelsDir = join(root, 'models');
  const missing = [entry, ...['blazeface', 'facemesh', 'iris'].map((m) => join(modelsDir, `${m}.json`))].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw errors.optionalPackageMissing(HUMAN_PACKAGE, HUMAN_VERSION, '`parse --method landmarks`', `its installation at ${root} lacks ${missing.join(', ')}`, ALTERNATIVE);
  }
  const wasmMain = require.resolve('@tensorflow/tfjs-backend-wasm');
  return {
    version: readVersion(join(root, 'package.json')),
    entry,
    modelsDir,
    wasmDir: dirname(wasmMain),
    wasmVersion: readVersion(join(dirname(dirname(wasmMain)), 'package.json')),
  };
}

function readVersion(packageJson: string): string {
  try {
    return String((JSON.parse(readFileSync(packageJson, 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}
