/**
 * Whether the tests that run the Vulkan device-select layer under Dawn can run here, and why not.
 * Gated like the other webgpu tests: SLFER_WEBGPU_TESTS=1 asks for them (they need a Vulkan driver,
 * which not every machine has); SLFER_REQUIRE_WEBGPU=1, as CI sets, also fails when they cannot run.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { vkLayerDir } from '../../src/engine/gpu-select.js';

export const VK_LAYER_MANIFEST = join(vkLayerDir(), 'VkLayer_SLFER_device_select.json');

/** '' when the layer tests can run, else the reason they are skipped. */
export function vkLayerSkipReason(): string {
  const wanted = process.env.SLFER_WEBGPU_TESTS === '1' || process.env.SLFER_REQUIRE_WEBGPU === '1';
  if (!wanted) return 'not requested (SLFER_WEBGPU_TESTS=1 runs these tests)';
  if (!existsSync(VK_LAYER_MANIFEST)) return `the Vulkan layer is not built (${VK_LAYER_MANIFEST}; npm run build:native needs gcc and libvulkan-dev)`;
  try {
    createRequire(import.meta.url).resolve('webgpu');
  } catch {
    return 'the Dawn package "webgpu" is not installed';
  }
  return '';
}
