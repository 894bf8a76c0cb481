/**
 * slfer-dist as a library: the CLI is a thin layer over these functions.
 *
 *   import { train, evaluate, predict, synthesize, parse, convertFromTorch } from 'slfer-dist';
 *   const { report, runDir } = await train({ config: { model: { variant: 'proposed' } } });
 */
export { train, type TrainOptions, type TrainResult, type TrainEvents } from './train/trainer.js';
export { launch, type LaunchOptions, type LaunchResult, type LaunchEvents, type RankTiming } from '../cluster/coordinator.js';
export { evaluate, predict, type EvaluateOptions, type PredictOptions, type Prediction } from './train/evaluate.js';
export { synthesize, type SynthesizeOptions, type SynthesizeResult } from './data/synth/synthesize.js';
export { parse, type ParseOptions, type ParseResult } from './parse/parse.js';
export { writePreview } from './parse/preview.js';
export type { MaskMaker } from './parse/mask-maker.js';
export { convertFromTorch, convertToTorch, type FromTorchOptions, type FromTorchResult, type ToTorchResult } from './train/convert.js';
export { plotRun, type PlotRunOptions, type PlotRunResult, type TsneFile } from './plot/plot-run.js';
export { renderChart, writeChart, type RenderedChart } from './plot/render.js';
export { loadPretrained, type PretrainedReport } from './train/pretrained.js';
export { readStateDict, toFloat32, type StateDict, type TorchTensor } from './torch/state-dict.js';
export { writeStateDict } from './torch/write-torch-file.js';
export { resolveConfig, readConfigFile, mergeConfig, ConfigSchema, type Config, type ConfigInput } from './config.js';
export type { EpochMetrics, Report } from './train/run-files.js';
export type { EvalResult } from './train/metrics.js';
export { selectBackend, BACKENDS, type BackendRequest, type Engine } from './engine/backend.js';
export { SlferModel, type SlferOutputs } from './model/slfer.js';
export { VARIANTS, type Variant, type ModelConfig } from './model/config.js';
export { jointLoss, type LossConfig } from './model/loss.js';
export { readRafDb } from './data/rafdb.js';
export { readSfew } from './data/sfew.js';
export { ImagePipeline } from './data/pipeline.js';
export { EXPRESSIONS, PART_CLASSES, PARSING_CLASSES, UNKNOWN_CLASS } from './data/labels.js';
export { SlferError, isSlferError, type SlferErrorCode } from './errors.js';
