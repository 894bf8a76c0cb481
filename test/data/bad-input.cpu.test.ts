import { describeBadInputs } from '../helpers/bad-input-table.js';

// Every bad input of test/helpers/bad-input.ts, trained on the cpu engine.
describeBadInputs('cpu');
