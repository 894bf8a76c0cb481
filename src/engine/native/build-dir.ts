import { join } from 'node:path';
import { packageRoot } from '../../util/package-root.js';

/**
 * The folder the native pieces are built into (scripts/build-native.mjs): the kernels
 * (slfer-native.node) and the Vulkan layer (vk-layer/). build/ under the package, unless
 * SLFER_NATIVE_DIR names another: the sanitizer build (npm run test:sanitize) is build/sanitize/.
 */
export function nativeBuildDir(): string {
  return process.env.SLFER_NATIVE_DIR || join(packageRoot(import.meta.url), 'build');
}
