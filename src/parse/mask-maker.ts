/**
 * What `slfer-dist parse` asks of a face-labelling method (BiSeNet face parsing, or landmarks):
 * one image's pixels in, one 19-class id per pixel out, at the image's own size.
 */
export interface MaskMaker {
  /** 'bisenet' | 'landmarks': recorded in parse.json. */
  readonly method: string;
  /** What parse.json records about the method (weights file and its SHA-256, input size, engine...). */
  readonly description: Record<string, unknown>;
  /**
   * RGB bytes (height × width × 3, row-major) to one class id per pixel (height × width): the 19
   * CelebAMask-HQ classes of labels.ts, or UNKNOWN_CLASS where the method cannot tell. Null when
   * the method finds no face (the image is then skipped and listed).
   */
  label(rgb: Uint8Array, width: number, height: number): Promise<Uint8Array | null>;
  dispose(): void;
}
