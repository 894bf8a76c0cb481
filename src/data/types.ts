/** What flows from dataset readers through the image pipeline into training. */

/** One labelled image on disk. */
export interface Sample {
  /** Stable identifier, unique within a split (RAF-DB: file stem; SFEW: <class folder>/<file stem>). */
  id: string;
  imagePath: string;
  /** 19-class face-parsing mask (8-bit PNG), or null when the dataset has none for this image. */
  maskPath: string | null;
  /**
   * Where the dataset's mask path rule puts this image's mask, whether or not the file exists:
   * the mask policy names it when a required mask is missing, so the user knows what to create.
   */
  expectedMaskPath: string;
  /** Expression index 0..6 in EXPRESSIONS order. */
  label: number;
}

export interface DatasetSplits {
  name: string;
  root: string;
  train: Sample[];
  test: Sample[];
}

/** A file the pipeline could not use; training goes on without it and lists it at the end. */
export interface SkippedFile {
  path: string;
  reason: string;
}

/**
 * One batch ready for the engine. Buffers are transferred from the decoding thread, never copied.
 * images: [size, S, S, 3] NHWC float32, normalised; masks: [size, S, S] part index 0..7 (8-class);
 * components: [size, 8] 1 for the top-n parts present in the crop, else 0.
 */
export interface Batch {
  size: number;
  inputSize: number;
  images: Float32Array;
  labels: Int32Array;
  masks: Uint8Array | null;
  components: Float32Array | null;
  ids: string[];
  /** Files of this batch that could not be decoded; `size` counts only the samples that were. */
  skipped: SkippedFile[];
  /** How long the consumer waited for this batch after asking for it: a data stall when > 0. */
  waitMs: number;
}
