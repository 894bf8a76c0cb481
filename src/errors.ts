/**
 * Every error slfer-dist raises on purpose is a SlferError: a stable `code` (for scripts and tests),
 * a message in the user's terms, and `hint`, what to do next. Made only through the factories below,
 * so codes and wording stay in one place.
 */

/** Every code a SlferError can carry (checked when an error arrives from another thread or process). */
export const ERROR_CODES = [
  'SLFER_CONFIG_INVALID',
  'SLFER_CONFIG_NOT_FOUND',
  'SLFER_DATASET_NOT_FOUND',
  'SLFER_LABEL_INVALID',
  'SLFER_MASK_MISSING',
  'SLFER_MASK_INVALID',
  'SLFER_IMAGE_UNREADABLE',
  'SLFER_ENGINE_UNAVAILABLE',
  'SLFER_NATIVE_KERNEL',
  'SLFER_CHECKPOINT_NOT_FOUND',
  'SLFER_CHECKPOINT_CORRUPT',
  'SLFER_CHECKPOINT_MISMATCH',
  'SLFER_TORCH_FILE_INVALID',
  'SLFER_TORCH_FILE_UNSAFE',
  'SLFER_WEIGHTS_MISMATCH',
  'SLFER_INVALID_ARGUMENT',
  'SLFER_ABORTED',
  'SLFER_CLUSTER_PEER_TIMEOUT',
  'SLFER_CLUSTER_PROTOCOL',
  'SLFER_CLUSTER_RING_UNUSABLE',
  'SLFER_CLUSTER_TRANSPORT',
  'SLFER_CLUSTER_RANK_INVALID',
  'SLFER_CLUSTER_RENDEZVOUS_TIMEOUT',
  'SLFER_CLUSTER_BENCH_FAILED',
  'SLFER_CLUSTER_WORKER_FAILED',
  'SLFER_CLUSTER_HEARTBEAT_LOST',
  'SLFER_CLUSTER_DIVERGED',
  'SLFER_CLUSTER_DEVICES',
  'SLFER_RUN_KEY_NOT_FOUND',
  'SLFER_RUN_KEY_UNSAFE',
  'SLFER_RUN_KEY_INVALID',
  'SLFER_RUN_KEY_EXISTS',
  'SLFER_SECURITY_REQUIRED',
  'SLFER_SECURITY_UNAVAILABLE',
  'SLFER_GPU_SELECTION',
  'SLFER_OPTIONAL_PACKAGE_MISSING',
  'SLFER_WEIGHTS_NOT_FOUND',
  'SLFER_WEIGHTS_INVALID',
  'SLFER_PARSE_METHOD_UNAVAILABLE',
  'SLFER_VARIANT_WITHOUT_ST',
  'SLFER_RUN_FOLDER_INVALID',
  'SLFER_WEB_MODEL_INVALID',
  'SLFER_INTERNAL',
] as const;
export type SlferErrorCode = (typeof ERROR_CODES)[number];

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

/** An error as it crosses a thread or process boundary: plain data, rebuilt by fromWire. */
export interface WireError {
  code: SlferErrorCode;
  message: string;
  hint: string;
}

/** A SlferError as plain data; anything else as SLFER_INTERNAL with its stack, so nothing is lost. */
export function toWire(e: unknown): WireError {
  const s = isSlferError(e) ? e : errors.internal(e instanceof Error ? (e.stack ?? e.message) : String(e));
  return { code: s.code, message: s.message, hint: s.hint };
}

/** The SlferError a WireError describes, checked on receipt: a malformed one is itself reported. */
export function fromWire(w: unknown, from: string): SlferError {
  const o = w as Partial<Record<keyof WireError, unknown>> | null;
  const ok = typeof o === 'object' && o !== null && typeof o.message === 'string' && typeof o.hint === 'string' && (ERROR_CODES as readonly unknown[]).includes(o.code);
  if (!ok) return errors.internal(`${from} reported an error in an unknown format: ${JSON.stringify(w)?.slice(0, 300)}`);
  return new SlferError(o.code as SlferErrorCode, o.message as string, o.hint as string);
}

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
  maskInvalid: (path: string, problem: string) =>
    new SlferError(
      'SLFER_MASK_INVALID',
      `mask ${path} ${problem}`,
      'masks must be PNGs of BiSeNet class ids 0..18, or 255 for unknown (8- or 16-bit greyscale, or a palette PNG whose indices are the ids) with the aspect ratio of their image; regenerate this one or delete it and pass --skip-missing-masks (see "Data layouts" in the README)',
    ),
  torchFileInvalid: (file: string, problem: string, cause?: unknown) =>
    new SlferError(
      'SLFER_TORCH_FILE_INVALID',
      `${file} is not a readable PyTorch checkpoint: ${problem}`,
      'check the download (size, SHA-256) or save it again with torch.save(model.state_dict(), path); zip (torch >= 1.6) and legacy files are both read',
      { cause },
    ),
  torchFileUnsafe: (file: string, global: string) =>
    new SlferError(
      'SLFER_TORCH_FILE_UNSAFE',
      `${file} asks to run the Python global ${global}, which a state dict never needs; it was not loaded`,
      'a checkpoint is a program: load it in PyTorch only if you trust it, and save just its tensors with torch.save(model.state_dict(), path)',
    ),
  weightsMismatch: (file: string, problem: string, hint: string) => new SlferError('SLFER_WEIGHTS_MISMATCH', `${file}: ${problem}`, hint),
  /** An optional dependency (not installed by `npm ci --omit=optional`, or failed to install) that a feature needs. */
  optionalPackageMissing: (pkg: string, version: string, feature: string, reason: string, alternative: string) =>
    new SlferError(
      'SLFER_OPTIONAL_PACKAGE_MISSING',
      `${feature} needs the optional package ${pkg}, which cannot be loaded: ${reason}`,
      `install it with \`npm install --save-exact ${pkg}@${version}\` (plain \`npm ci\` installs it unless optional dependencies are omitted), or ${alternative}`,
    ),
  internal: (detail: string) =>
    new SlferError('SLFER_INTERNAL', `unexpected error: ${detail}`, 'this is a bug in slfer-dist: report it with this message and the command line'),
  imageUnreadable: (path: string, reason: string) =>
    new SlferError('SLFER_IMAGE_UNREADABLE', `cannot decode image ${path}: ${reason}`, 'check that the file exists and is a JPEG or PNG image'),
  engineUnavailable: (backend: string, reason: string, remedy: string) =>
    new SlferError('SLFER_ENGINE_UNAVAILABLE', `backend "${backend}" cannot be used: ${reason}`, remedy),
  nativeKernel: (problem: string, cause?: unknown) =>
    new SlferError(
      'SLFER_NATIVE_KERNEL',
      `native kernel refused its arguments: ${problem}`,
      'this is a bug in slfer-dist, not in your data: report it with this message; meanwhile SLFER_NATIVE=off trains on the pure-wasm kernels',
      { cause },
    ),
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
  /** A mid-epoch checkpoint holds each rank's own shard position and BN statistics: only its world size can continue it. */
  checkpointWorldSize: (path: string, epoch: number, stepInEpoch: number, saved: number, now: number) =>
    new SlferError(
      'SLFER_CHECKPOINT_MISMATCH',
      `checkpoint ${path} was saved in the middle of epoch ${epoch + 1} (after step ${stepInEpoch}) by ${saved} process${saved === 1 ? '' : 'es'}, and this run has ${now}`,
      `resume it with ${saved} process${saved === 1 ? '' : 'es'}; or resume from the end-of-epoch checkpoint before it (checkpoints/epoch-${String(epoch).padStart(4, '0')}), which --allow-world-size-change continues with another number`,
    ),
  invalidArgument: (what: string, problem: string, hint: string) =>
    new SlferError('SLFER_INVALID_ARGUMENT', `${what}: ${problem}`, hint),
  aborted: (what: string) =>
    new SlferError('SLFER_ABORTED', `${what} was interrupted`, 'resume with --resume <run folder>'),
  clusterPeerTimeout: (rank: number, peer: number, waitingFor: string, timeoutMs: number, cause?: unknown) =>
    new SlferError(
      'SLFER_CLUSTER_PEER_TIMEOUT',
      `rank ${rank}: no ${waitingFor} from rank ${peer} within ${timeoutMs} ms`,
      `rank ${peer} has probably exited or hung: check its log; every rank must run the same collectives in the same order (raise timeoutMs only if a step legitimately takes that long)`,
      { cause },
    ),
  clusterProtocol: (rank: number, peer: number, problem: string) =>
    new SlferError(
      'SLFER_CLUSTER_PROTOCOL',
      `rank ${rank}: unexpected message from rank ${peer}: ${problem}`,
      'every rank must call the same collectives in the same order, with buffers of the same length and the same options',
    ),
  controlMessageInvalid: (from: string, problem: string) =>
    new SlferError(
      'SLFER_CLUSTER_PROTOCOL',
      `control message from ${from} refused: ${problem}`,
      'every process of a run must be the same slfer-dist version; if something else is sending to the run\'s ports, keep it off them',
    ),
  clusterRingUnusable: (rank: number, state: string, cause?: unknown) =>
    new SlferError(
      'SLFER_CLUSTER_RING_UNUSABLE',
      `rank ${rank}: the ring is ${state}`,
      'call bind() and connect() before collectives; after a failed collective or close(), build a new Ring on every rank',
      { cause },
    ),
  clusterTransport: (what: string, endpoint: string, cause?: unknown) =>
    new SlferError(
      'SLFER_CLUSTER_TRANSPORT',
      `cannot ${what} ${endpoint}: ${cause instanceof Error ? cause.message : String(cause)}`,
      'check the host/port or IPC folder (it must exist, be writable, and give socket paths under 100 characters)',
      { cause },
    ),
  clusterRankInvalid: (problem: string) =>
    new SlferError(
      'SLFER_CLUSTER_RANK_INVALID',
      `rendezvous: ${problem}`,
      'start exactly one worker per rank 0..worldSize-1, all with the same worldSize as the coordinator',
    ),
  clusterRendezvousTimeout: (problem: string, timeoutMs: number) =>
    new SlferError(
      'SLFER_CLUSTER_RENDEZVOUS_TIMEOUT',
      `rendezvous did not complete within ${timeoutMs} ms: ${problem}`,
      'check that every worker started and can reach the coordinator endpoint (see its log); raise the timeout for slow starts',
    ),
  clusterBenchFailed: (problem: string, cause?: unknown) =>
    new SlferError(
      'SLFER_CLUSTER_BENCH_FAILED',
      `all-reduce benchmark failed: ${problem}`,
      'rebuild (npm run build) and rerun; a wrong result means a bug in the collective layer: report it with the command line',
      { cause },
    ),
  clusterWorkerFailed: (rank: number, how: string, lastLines: string[]) =>
    new SlferError(
      'SLFER_CLUSTER_WORKER_FAILED',
      `worker rank ${rank} ${how}${lastLines.length ? `; its last lines of stderr:\n    ${lastLines.join('\n    ')}` : ''}`,
      'fix what its log shows, then continue from the last checkpoint with --resume <run folder>',
    ),
  clusterHeartbeatLost: (rank: number, seconds: number) =>
    new SlferError(
      'SLFER_CLUSTER_HEARTBEAT_LOST',
      `worker rank ${rank} sent no heartbeat for ${seconds.toFixed(1)} s`,
      'the process hung or its machine is overloaded; continue from the last checkpoint with --resume <run folder>',
    ),
  clusterPeerLost: (rank: number, peer: number) =>
    new SlferError(
      'SLFER_CLUSTER_RING_UNUSABLE',
      `rank ${rank}: the ring is broken: the connection to rank ${peer} was lost (its process or machine died, or the link went down)`,
      `rank ${peer}'s log (or its machine's) says why; the run continues from its last checkpoint with --max-restarts, or when restarted with --resume auto`,
    ),
  clusterCoordinatorLost: (rank: number, endpoint: string) =>
    new SlferError(
      'SLFER_CLUSTER_HEARTBEAT_LOST',
      `worker rank ${rank}: lost the coordinator at ${endpoint} (its process or machine died, or the link went down)`,
      "rank 0's log says why; the run continues from its last checkpoint when restarted with --resume auto",
    ),
  clusterDiverged: (epoch: number, detail: string) =>
    new SlferError(
      'SLFER_CLUSTER_DIVERGED',
      `after epoch ${epoch} the workers' weights differ: ${detail}`,
      'every rank must run the same engine and the same code; report this with the run folder',
    ),
  clusterDevices: (requested: number, available: number, how: string) =>
    new SlferError(
      'SLFER_CLUSTER_DEVICES',
      `--gpus ${requested} asks for more GPUs than this machine has (${available}, from ${how})`,
      `pass --gpus ${Math.max(1, available)} or fewer, or --workers N for CPU workers`,
    ),
  clusterVisibleDevicesInvalid: (value: string, problem: string, choices: string) =>
    new SlferError(
      'SLFER_CLUSTER_DEVICES',
      `CUDA_VISIBLE_DEVICES=${value}: ${problem}; this machine's GPUs: ${choices}`,
      'list distinct GPU indices or UUIDs as `nvidia-smi -L` prints them, or unset CUDA_VISIBLE_DEVICES to use GPUs 0..N-1',
    ),
  runKeyNotFound: (file: string, cause?: unknown) =>
    new SlferError(
      'SLFER_RUN_KEY_NOT_FOUND',
      `run key ${file} cannot be read: ${cause instanceof Error ? cause.message : String(cause)}`,
      `check the path given to --auth-key (make a key with \`slfer-dist keygen --out ${file}\`; on Kubernetes, mount the Secret that holds it)`,
      { cause },
    ),
  /** Group- or world-readable: anyone who can read the file can join the run, so it is refused as ssh refuses such a key. */
  runKeyUnsafe: (file: string, mode: number, kubernetes: boolean) =>
    new SlferError(
      'SLFER_RUN_KEY_UNSAFE',
      `run key ${file} has mode 0${(mode & 0o777).toString(8)}: other users of this machine can read it, and anyone who has it can join the run`,
      kubernetes
        ? 'set `defaultMode: 0400` on the Secret volume that mounts it (Kubernetes mounts Secrets 0644 by default)'
        : `\`chmod 600 ${file}\` (0600 or 0400: readable by its owner only)`,
    ),
  runKeyInvalid: (file: string, line: number | undefined, problem: string) =>
    new SlferError(
      'SLFER_RUN_KEY_INVALID',
      `run key ${file}${line === undefined ? '' : `:${line}`}: ${problem}`,
      `make a new one with \`slfer-dist keygen --out ${file} --force\` and give that same file to every process of the run`,
    ),
  runKeyExists: (file: string) =>
    new SlferError(
      'SLFER_RUN_KEY_EXISTS',
      `${file} already exists; a run key is not overwritten by default`,
      'pass --force to replace it (every process of the run must then get the new file), or choose another --out',
    ),
  /** A run that listens beyond loopback with neither a key nor --insecure. */
  securityRequired: (why: string) =>
    new SlferError(
      'SLFER_SECURITY_REQUIRED',
      `${why}, so every socket of the run must be authenticated and encrypted (CURVE), and no run key was given`,
      'make a key once with `slfer-dist keygen --out FILE` and pass `--auth-key FILE` to every process of the run (on Kubernetes: a Secret mounted with `defaultMode: 0400`); or pass --insecure to run unauthenticated and unencrypted on a network you trust',
    ),
  securityUnavailable: (problem: string, hint: string, cause?: unknown) =>
    new SlferError('SLFER_SECURITY_UNAVAILABLE', `CURVE security cannot be set up: ${problem}`, hint, { cause }),
  gpuSelectionInvalid: (value: string) =>
    new SlferError(
      'SLFER_GPU_SELECTION',
      `SLFER_VK_DEVICE=${value} names no device: expected uuid:<GPU UUID>, index:<n> or pci:<domain:bus:device.function>`,
      'set it to e.g. uuid:GPU-… as `nvidia-smi -L` prints it, or index:0, or unset it to let the engine choose',
    ),
  gpuSelectionLayerMissing: (value: string, path: string) =>
    new SlferError(
      'SLFER_GPU_SELECTION',
      `SLFER_VK_DEVICE=${value} needs the Vulkan layer VK_LAYER_SLFER_device_select, which is not built (${path} is missing)`,
      'install a C compiler and the Vulkan headers (apt-get install gcc libvulkan-dev) and run `npm run build:native`, or unset SLFER_VK_DEVICE',
    ),
  gpuSelectionLayerNotLoaded: (value: string, dir: string) =>
    new SlferError(
      'SLFER_GPU_SELECTION',
      `the Vulkan layer VK_LAYER_SLFER_device_select did not run, so SLFER_VK_DEVICE=${value} could not be applied`,
      `check that a Vulkan driver is installed; VK_LOADER_DEBUG=layer shows where the Vulkan loader looked for layers (an old loader ignores VK_ADD_LAYER_PATH: set VK_LAYER_PATH=${dir})`,
    ),
  gpuSelectionNoMatch: (value: string, choices: string[]) =>
    new SlferError(
      'SLFER_GPU_SELECTION',
      `SLFER_VK_DEVICE=${value} matches ${choices.length ? `none of the Vulkan devices: ${choices.join('; ')}` : 'nothing: there is no Vulkan device'}`,
      choices.length ? 'set SLFER_VK_DEVICE to one of those (index:N or uuid:…), or unset it to let the engine choose' : 'install a Vulkan driver, or unset SLFER_VK_DEVICE',
    ),
  weightsNotFound: (file: string, what: string, where: string) =>
    new SlferError('SLFER_WEIGHTS_NOT_FOUND', `weights file ${file} not found (or not a file)`, `pass the path of ${what}; ${where}`),
  /** The file holds a state dict, but not this network's: every missing, unused and misshapen key, listed. */
  weightsDoNotFit: (file: string, model: string, problems: string[], total: number, expected: string) =>
    new SlferError(
      'SLFER_WEIGHTS_MISMATCH',
      `weights file ${file} does not fit ${model}:\n    ${problems.join('\n    ')}${total > problems.length ? `\n    … and ${total - problems.length} more` : ''}`,
      `pass ${expected}`,
    ),
  weightsInvalid: (file: string, key: string, problem: string) =>
    new SlferError('SLFER_WEIGHTS_INVALID', `weights file ${file}: tensor "${key}" ${problem}`, 'the file is damaged or was saved from a diverged training run: download it again'),
  /** A folder given as a run folder (`plot RUN`) that is not one, or whose metrics.jsonl cannot be read. */
  runFolderInvalid: (dir: string, problem: string) =>
    new SlferError(
      'SLFER_RUN_FOLDER_INVALID',
      `${dir} is not a usable run folder: ${problem}`,
      'pass the folder a `slfer-dist train` or `launch` run wrote (its --out, by default runs/<timestamp>): it holds metrics.jsonl and checkpoints/',
    ),
  parseMethodUnavailable: (method: string, reason: string, remedy: string) =>
    new SlferError('SLFER_PARSE_METHOD_UNAVAILABLE', `parse method "${method}" is not available: ${reason}`, remedy),
  /** Something needs the segmentation head (ST) of a model trained without one (e.g. eval --masks). */
  variantWithoutSt: (checkpoint: string, variant: string, what: string, withSt: readonly string[]) =>
    new SlferError(
      'SLFER_VARIANT_WITHOUT_ST',
      `${what} needs the segmentation head (ST), and checkpoint ${checkpoint} is of variant "${variant}", which has none`,
      `use a checkpoint of a variant with ST (${withSt.join(', ')}; train one with --variant proposed), or leave ${what} out`,
    ),
  /** A folder that should hold an exported web model (`slfer-dist export`) does not. */
  webModelInvalid: (dir: string, problem: string) =>
    new SlferError('SLFER_WEB_MODEL_INVALID', `${dir} is not a usable exported model: ${problem}`, 'export one there first: slfer-dist export --checkpoint RUN --out DIR'),
};
