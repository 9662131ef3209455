// Named errors of the data layer. Every message names the file (and member, row or offset) at
// fault and says what was expected, so a failed run can be fixed without reading code.

/** Bad or unreadable dataset input: a corrupt archive, a missing file, an empty split. */
export class DatasetError extends Error {
  override name = 'DatasetError';
  /** The file or folder at fault. */
  readonly source: string;
  constructor(source: string, message: string, options?: ErrorOptions) {
    super(`${source}: ${message}`, options);
    this.source = source;
  }
}

/** The dataset path does not exist: "X does not exist; " and what to do (download it, or a near name). */
export class DatasetNotFoundError extends DatasetError {
  override name = 'DatasetNotFoundError';
  constructor(source: string, advice: string, options?: ErrorOptions) {
    super(source, `does not exist; ${advice}`, options);
    this.message = `${source} does not exist; ${advice}`;
  }
}

/** One image could not be decoded (skipped with a warning unless the loader is strict). */
export class CorruptImageError extends DatasetError {
  override name = 'CorruptImageError';
}

/** A download failed: HTTP status, network error or checksum mismatch. */
export class DownloadError extends Error {
  override name = 'DownloadError';
}
