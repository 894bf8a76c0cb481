/** What flows from dataset readers through the image pipeline into training. */

/** One labelled image on disk. */
export interface Sample {
  /** Stable identifier (file name without extension), unique within a split. */
  id: string;
  imagePath: string;
  /** 19-class face-parsing mask (8-bit PNG), or null when the dataset has none for this image. */
  maskPath: string | null;
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
  skipped: SkippedFile[];
}
