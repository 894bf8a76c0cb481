import { describeBadInputs } from '../helpers/bad-input-table.js';

// Every bad input of test/helpers/bad-input.ts, trained on the pure-wasm engine (XNNPACK and
// slfer-dist's TypeScript kernels): the native kernels are off for this whole process.
process.env.SLFER_NATIVE = 'off';
describeBadInputs('wasm', '', /^XNNPACK/);
