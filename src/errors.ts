/**
 * Every error slfer-dist raises on purpose is a SlferError: a stable `code` (for scripts and tests),
 * a message in the user's terms, and `hint`, what to do next. Made only through the factories below,
 * so codes and wording stay in one place.
 */
export type SlferErrorCode =
  | 'SLFER_CONFIG_INVALID'
  | 'SLFER_CONFIG_NOT_FOUND'
  | 'SLFER_DATASET_NOT_FOUND'
  | 'SLFER_LABEL_INVALID'
  | 'SLFER_MASK_MISSING'
  | 'SLFER_IMAGE_UNREADABLE'
  | 'SLFER_ENGINE_UNAVAILABLE'
  | 'SLFER_CHECKPOINT_NOT_FOUND'
  | 'SLFER_CHECKPOINT_CORRUPT'
  | 'SLFER_CHECKPOINT_MISMATCH'
  | 'SLFER_INVALID_ARGUMENT'
  | 'SLFER_ABORTED';

export class SlferError extends Error {
  readonly code: SlferErrorCode;
  readonly hint: string;
  constructor(code: SlferErrorCode, message: string, hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SlferError';
    this.code = code;
    this.hint = hint;
  }
  /** One block for a terminal: what happened, then what to do. */
  format(): string {
    return `error ${this.code}: ${this.message}\n  → ${this.hint}`;
  }
}

export const isSlferError = (e: unknown): e is SlferError => e instanceof SlferError;

export const errors = {
  configInvalid: (where: string, field: string, problem: string) =>
    new SlferError(
      'SLFER_CONFIG_INVALID',
      `${where}: field "${field}" ${problem}`,
      'fix or remove that field; `slfer-dist train --help` and configs/*.json show every valid field',
    ),
  configNotFound: (file: string, cause?: unknown) =>
    new SlferError('SLFER_CONFIG_NOT_FOUND', `config file ${file} cannot be read`, 'check the path given to --config', { cause }),
  datasetNotFound: (path: string, expected: string) =>
    new SlferError(
      'SLFER_DATASET_NOT_FOUND',
      `dataset not found: ${path} is missing`,
      `point --data at a folder holding ${expected}; see "Data layouts" in the README`,
    ),
  labelInvalid: (file: string, line: number, text: string, problem: string) =>
    new SlferError(
      'SLFER_LABEL_INVALID',
      `${file}:${line}: ${problem}: "${text}"`,
      'each line must read "<name>.jpg <label>" with label 1..7 (RAF-DB order); fix or delete that line',
    ),
  maskMissing: (maskPath: string, imagePath: string) =>
    new SlferError(
      'SLFER_MASK_MISSING',
      `no semantic mask for ${imagePath}: expected ${maskPath}`,
      'generate face-parsing masks (see "Data layouts" in the README), train a variant without ST/CT (--variant baseline), or pass --skip-missing-masks',
    ),
  imageUnreadable: (path: string, reason: string) =>
    new SlferError('SLFER_IMAGE_UNREADABLE', `cannot decode image ${path}: ${reason}`, 'check that the file exists and is a JPEG or PNG image'),
  engineUnavailable: (backend: string, reason: string, remedy: string) =>
    new SlferError('SLFER_ENGINE_UNAVAILABLE', `backend "${backend}" cannot be used: ${reason}`, remedy),
  checkpointNotFound: (path: string) =>
    new SlferError(
      'SLFER_CHECKPOINT_NOT_FOUND',
      `no checkpoint at ${path}`,
      'pass a run folder (runs/<name>) or one of its checkpoints/epoch-NNNN folders',
    ),
  checkpointCorrupt: (path: string, problem: string) =>
    new SlferError(
      'SLFER_CHECKPOINT_CORRUPT',
      `checkpoint ${path} is damaged: ${problem}`,
      'use an earlier checkpoint of the same run (checkpoints/epoch-NNNN)',
    ),
  checkpointMismatch: (path: string, problem: string) =>
    new SlferError(
      'SLFER_CHECKPOINT_MISMATCH',
      `checkpoint ${path} does not fit this model: ${problem}`,
      'resume with the config the checkpoint was trained with (it is stored in the run folder as config.json)',
    ),
  invalidArgument: (what: string, problem: string, hint: string) =>
    new SlferError('SLFER_INVALID_ARGUMENT', `${what}: ${problem}`, hint),
  aborted: (what: string) =>
    new SlferError('SLFER_ABORTED', `${what} was interrupted`, 'resume with --resume <run folder>'),
};
