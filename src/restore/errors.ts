// Named errors of imputation, denoising and scoring: one line that names the input at fault and
// says what to give instead.

/** A --mask value or mask file the images cannot use. */
export class MaskError extends Error {
  override name = 'MaskError';
}

/** A --noise value that names no known noise model. */
export class NoiseSpecError extends Error {
  override name = 'NoiseSpecError';
}

/** The run's model cannot do what was asked (no encoder to condition on the observed pixels). */
export class ModelTaskError extends Error {
  override name = 'ModelTaskError';
}

/** --normal names classes the data do not have, or the data have no labels to split on. */
export class NormalClassError extends Error {
  override name = 'NormalClassError';
}
