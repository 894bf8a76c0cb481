import { expect, it } from 'vitest';
import { loadNativeKernels } from '../../src/engine/native/addon.js';
import { describeBadInputs } from '../helpers/bad-input-table.js';

// Every bad input of test/helpers/bad-input.ts, trained on the wasm engine with the native kernels
// (oneDNN convolutions, C batch norm and gradients), where odd batch sizes once corrupted the heap.
// npm run test:sanitize runs this file with the kernels built under ASan and UBSan.
const native = loadNativeKernels();

it('the native kernels load wherever they are required', () => {
  if (process.env.SLFER_REQUIRE_NATIVE === '1') expect(native.ok ? 'loaded' : native.reason).toBe('loaded');
});

describeBadInputs('wasm', native.ok ? '' : native.reason, /^oneDNN/);
