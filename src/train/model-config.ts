import type { Config } from '../config.js';
import { NUM_EXPRESSIONS, NUM_PARTS } from '../data/labels.js';
import type { PipelineOptions } from '../data/pipeline.js';
import type { ModelConfig } from '../model/config.js';

/** The network a run config describes (the label spaces are fixed by the datasets). */
export function modelConfigOf(config: Config): ModelConfig {
  return { ...config.model, numExpressions: NUM_EXPRESSIONS, numParts: NUM_PARTS };
}

/** The image pipeline a run config describes: the same resize, crop and normalisation for training, eval and predict. */
export function pipelineOptionsOf(config: Config, o: { withMasks: boolean; threads?: number; prefetch?: number }): PipelineOptions {
  return {
    threads: o.threads ?? config.data.threads,
    prefetch: o.prefetch,
    resize: config.data.resize,
    inputSize: config.model.inputSize,
    mean: config.data.mean,
    std: config.data.std,
    withMasks: o.withMasks,
    topN: config.loss.topN,
  };
}
