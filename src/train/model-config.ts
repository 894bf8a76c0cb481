import type { Config } from '../config.js';
import { NUM_EXPRESSIONS, NUM_PARTS } from '../data/labels.js';
import type { ModelConfig } from '../model/config.js';

/** The network a run config describes (the label spaces are fixed by the datasets). */
export function modelConfigOf(config: Config): ModelConfig {
  return { ...config.model, numExpressions: NUM_EXPRESSIONS, numParts: NUM_PARTS };
}
