import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { IMAGENET_MEAN, IMAGENET_STD } from './data/imagenet.js';
import { BACKENDS } from './engine/backend-names.js';
import { errors } from './errors.js';
import { VARIANTS } from './model/config.js';

/**
 * The run configuration: one schema, paper defaults, strict (an unknown or mistyped field is an
 * error that names it). Config files are partial: they overlay the defaults, and CLI flags overlay
 * the file.
 */
const positiveInt = z.number().int().positive();

const SyntheticSchema = z.strictObject({
  /** Training images to generate. */
  train: positiveInt.default(2100),
  /** Test images to generate. */
  test: positiveInt.default(700),
  /** Side of the generated images in pixels. */
  size: z.number().int().min(32).max(512).default(100),
  /** Generator seed: the same seed gives the same bytes. */
  seed: z.number().int().nonnegative().default(0),
});

const DataSchema = z.strictObject({
  /** Which reader: RAF-DB basic layout, SFEW 2.0 layout, or the generated synthetic set (RAF-DB layout). */
  dataset: z.enum(['rafdb', 'sfew', 'synthetic']).default('synthetic'),
  /** Dataset folder (rafdb/sfew); for synthetic, where to write it (default: the cache folder). */
  root: z.string().min(1).optional(),
  synthetic: SyntheticSchema.default(SyntheticSchema.parse({})),
  /** Images are resized to resize×resize before the crop (train: random, test: centre). */
  resize: positiveInt.default(256),
  /** Random horizontal flip while training. */
  hflip: z.boolean().default(true),
  /**
   * Decoding threads (piscina). Default: min(2, cores) in one process; under launch, the cores left per
   * worker after its engine, at least one.
   */
  threads: positiveInt.optional(),
  /** Batches decoded ahead of the engine. */
  prefetch: positiveInt.optional(),
  /** Drop images without a mask instead of stopping, when ST or CT need masks. */
  skipMissingMasks: z.boolean().default(false),
  /**
   * Input normalisation, (pixel/255 - mean) / std per RGB channel: ImageNet's statistics, which
   * torchvision-style pretrained weights expect. DREAM-style checkpoints were trained on [0, 1]
   * inputs: mean [0, 0, 0], std [1, 1, 1].
   */
  mean: z.tuple([z.number(), z.number(), z.number()]).default(IMAGENET_MEAN),
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).default(IMAGENET_STD),
});

const ModelSchema = z.strictObject({
  variant: z.enum(VARIANTS).default('proposed'),
  width: z.number().positive().max(4).default(1),
  inputSize: z
    .number()
    .int()
    .min(32)
    .refine((n) => n % 32 === 0, 'must be a multiple of 32')
    .default(224),
  seReduction: positiveInt.default(16),
  /** 'batch' (the paper) or 'frozen' (moving statistics only; see ModelConfig.batchNorm). */
  batchNorm: z.enum(['batch', 'frozen']).default('batch'),
  /**
   * A PyTorch ResNet18 checkpoint (torchvision names, e.g. MS-Celeb-1M's resnet18_msceleb.pth or
   * DREAM's ijba_res18_naive.pth.tar) whose weights start the backbone; SE blocks and heads keep
   * their initialisation. Width 1 only.
   */
  pretrained: z.string().min(1).optional(),
});

const LossSchema = z.strictObject({
  lambdaSeg: z.number().nonnegative().default(0.5),
  lambdaCls: z.number().nonnegative().default(0.5),
  topN: z.number().int().min(1).max(8).default(4),
});

const TrainSchema = z.strictObject({
  epochs: positiveInt.default(40),
  batchSize: positiveInt.default(16),
  lr: z.number().positive().default(1e-4),
  beta1: z.number().min(0).lt(1).default(0.5),
  beta2: z.number().min(0).lt(1).default(0.999),
  epsilon: z.number().positive().default(1e-8),
  /** Epochs after which the learning rate is multiplied by gamma (paper: 10, 18, 25, 32). */
  milestones: z.array(z.number().int().positive()).default([10, 18, 25, 32]),
  gamma: z.number().positive().default(0.1),
  seed: z.number().int().nonnegative().default(0),
  /** Epoch checkpoints kept besides the best one (and as many mid-epoch ones of the epoch in progress). */
  keepCheckpoints: positiveInt.default(3),
  /**
   * Also checkpoint every this many steps within an epoch, so a restart repeats at most that many
   * (resuming gives bitwise the weights of an uninterrupted run at the same world size). Absent:
   * end-of-epoch checkpoints only.
   */
  checkpointEvery: z
    .number()
    .int({ error: 'must be a whole number of steps' })
    .min(1, { error: 'must be at least 1 step (leave it out for end-of-epoch checkpoints only)' })
    .optional(),
});

const EngineSchema = z.strictObject({
  backend: z.enum(BACKENDS).default('auto'),
});

export const ConfigSchema = z.strictObject({
  data: DataSchema.default(DataSchema.parse({})),
  model: ModelSchema.default(ModelSchema.parse({})),
  loss: LossSchema.default(LossSchema.parse({})),
  train: TrainSchema.default(TrainSchema.parse({})),
  engine: EngineSchema.default(EngineSchema.parse({})),
});

export type Config = z.infer<typeof ConfigSchema>;
/** What callers may pass: any subset, nested. */
export type ConfigInput = DeepPartial<Config>;
type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

/** Validates a (partial) config; `where` names its source in errors (a file or "--flags"). */
export function resolveConfig(input: unknown, where = 'config'): Config {
  const r = ConfigSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') {
    const field = [path, issue.keys[0]].filter(Boolean).join('.');
    throw errors.configInvalid(where, field, 'is not a known field');
  }
  throw errors.configInvalid(where, path || '(root)', `is invalid: ${issue.message}`);
}

/** Reads a JSON config file; JSON syntax errors name the file and position. */
export function readConfigFile(file: string): ConfigInput {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw errors.configNotFound(file, e);
  }
  try {
    return JSON.parse(text) as ConfigInput;
  } catch (e) {
    throw errors.configInvalid(file, '(file)', `is not valid JSON: ${(e as Error).message}`);
  }
}

/** Deep merge of plain objects; arrays and scalars in `over` replace those in `base`. */
export function mergeConfig(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = v === undefined ? base[k] : mergeConfig(base[k], v);
  return out;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
