// SSIM and multi-scale SSIM (Wang et al. 2003/2004) per image, differentiable, for losses and eval.
//
// Local statistics use a Gaussian window applied as two 1-D passes (11x1 then 1x11), which is
// 2 x 11 instead of 121 multiply-adds per pixel. Channels are folded into the batch so a single
// 1-channel conv filters every channel. Borders are zero-padded ('same'), as PyTorch-VAE's MS-SSIM
// does, so 5 scales also work on 32- and 64-pixel images (a 'valid' window needs >= 176 pixels).
// This is the training loss's form; `medvae eval` scores on valid windows (src/eval/ssim.ts),
// reusing the building blocks exported here.
import { tf } from '../util/tf.ts';

export interface SsimOptions {
  /** max - min of the pixel range: 2 for images in [-1, 1], 1 for [0, 1], 255 for bytes. */
  dataRange: number;
  windowSize?: number;
  sigma?: number;
  k1?: number;
  k2?: number;
}

export interface MsSsimOptions extends SsimOptions {
  /** One weight per scale; defaults to Wang et al.'s five. */
  weights?: readonly number[];
}

export const MS_SSIM_WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333] as const;

/**
 * Floor for contrast-structure and SSIM values before raising them to fractional powers. Unlike
 * pytorch_msssim's relu (floor 0), a positive floor keeps the backward finite: d(v^w)/dv is
 * infinite at 0, and inf times relu's zero gradient is NaN.
 */
export const MIN_SIMILARITY = 1e-6;

export class SsimInputError extends Error {
  override name = 'SsimInputError';
}

/** Normalised 1-D Gaussian window exp(-(i - c)^2 / (2 sigma^2)), c the centre; sums to 1. */
export function gaussianWindow(size: number, sigma: number): Float32Array {
  const centre = (size - 1) / 2;
  const w = new Float64Array(size);
  let total = 0;
  for (let i = 0; i < size; i++) {
    w[i] = Math.exp(-((i - centre) ** 2) / (2 * sigma * sigma));
    total += w[i];
  }
  return Float32Array.from(w, (v) => v / total);
}

export interface ResolvedSsimOptions {
  window: Float32Array;
  c1: number;
  c2: number;
}

export function resolveSsimOptions(opts: SsimOptions): ResolvedSsimOptions {
  if (!(opts.dataRange > 0)) throw new SsimInputError(`dataRange must be > 0, got ${opts.dataRange}`);
  const size = opts.windowSize ?? 11;
  // Odd sizes only: the window must have a centre pixel (and the blur its symmetric transpose).
  if (!Number.isInteger(size) || size < 1 || size % 2 === 0)
    throw new SsimInputError(`windowSize must be an odd positive integer, got ${size}`);
  const window = gaussianWindow(size, opts.sigma ?? 1.5);
  return { window, c1: ((opts.k1 ?? 0.01) * opts.dataRange) ** 2, c2: ((opts.k2 ?? 0.03) * opts.dataRange) ** 2 };
}

/** Two 1-D passes of `window` over single-channel images, zero-padded to the same size. */
function blurForward(x: tf.Tensor4D, window: Float32Array): tf.Tensor4D {
  const size = window.length;
  return tf.tidy(() => {
    const vertical = tf.tensor4d(window, [size, 1, 1, 1]);
    const horizontal = tf.tensor4d(window, [1, size, 1, 1]);
    return tf.conv2d(tf.conv2d(x, vertical, 1, 'same'), horizontal, 1, 'same');
  });
}

/**
 * Gaussian blur whose backward is the same blur: with an odd, symmetric window centred by 'same'
 * padding, the blur is a symmetric linear map, so its transpose (what backprop applies to dy) is
 * itself. This swaps Conv2DBackpropInput, slow on wasm, for the forward conv.
 */
export function gaussianBlur(x: tf.Tensor4D, window: Float32Array): tf.Tensor4D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: blurForward(args[0] as tf.Tensor4D, window),
    gradFunc: (dy: tf.Tensor) => blurForward(dy as tf.Tensor4D, window),
  }));
  return op(x) as tf.Tensor4D;
}

/** NHWC -> (N*C)HW1, so that one single-channel filter handles every channel. */
export function foldChannels(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (c === 1) return x;
  return tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [n * c, h, w, 1]);
}

export function checkPair(a: tf.Tensor4D, b: tf.Tensor4D): void {
  if (a.rank !== 4 || !tf.util.arraysEqual(a.shape, b.shape)) {
    throw new SsimInputError(`SSIM needs two NHWC batches of the same shape, got [${a.shape}] and [${b.shape}]`);
  }
}

/** A Gaussian filter of single-channel images by a 1-D window: 'same' (training) or 'valid' (eval). */
export type BlurFunction = (x: tf.Tensor4D, window: Float32Array) => tf.Tensor4D;

/**
 * Per-(image, channel) SSIM and contrast-structure at one scale of folded images ((N*C)HW1),
 * each the mean of its map over the pixels `blur` leaves. Returns two 1-D tensors of length N*C.
 */
export function ssimAndCs(
  x: tf.Tensor4D,
  y: tf.Tensor4D,
  r: ResolvedSsimOptions,
  blur: BlurFunction = gaussianBlur,
): { ssim: tf.Tensor1D; cs: tf.Tensor1D } {
  const m = x.shape[0];
  // One blur per map rather than one over the five stacked: no concat and split (each a full copy),
  // and the maps of y alone stay off the gradient path, so backprop blurs three maps, not five.
  const [muX, muY, exx, eyy, exy] = [x, y, tf.mul(x, x), tf.mul(y, y), tf.mul(x, y)].map((map) => blur(map as tf.Tensor4D, r.window));
  const muXX = tf.mul(muX, muX);
  const muYY = tf.mul(muY, muY);
  const muXY = tf.mul(muX, muY);
  const csMap = tf.div(tf.add(tf.mul(tf.sub(exy, muXY), 2), r.c2), tf.add(tf.add(tf.sub(exx, muXX), tf.sub(eyy, muYY)), r.c2));
  const luminance = tf.div(tf.add(tf.mul(muXY, 2), r.c1), tf.add(tf.add(muXX, muYY), r.c1));
  const ssim = tf.reshape(tf.mean(tf.mul(luminance, csMap), [1, 2, 3]), [m]) as tf.Tensor1D;
  const cs = tf.reshape(tf.mean(csMap, [1, 2, 3]), [m]) as tf.Tensor1D;
  return { ssim, cs };
}

/** Mean over channels of per-(image, channel) values laid out image-major after folding. */
export function perImage(values: tf.Tensor1D, n: number): tf.Tensor1D {
  return tf.mean(tf.reshape(values, [n, values.shape[0] / n]), 1) as tf.Tensor1D;
}

/** SSIM of each image pair (mean over channels and pixels): a length-N vector, 1 for identical images. */
export function ssim(a: tf.Tensor4D, b: tf.Tensor4D, opts: SsimOptions): tf.Tensor1D {
  checkPair(a, b);
  const r = resolveSsimOptions(opts);
  return tf.tidy(() => perImage(ssimAndCs(foldChannels(a), foldChannels(b), r).ssim, a.shape[0]));
}

/**
 * MS-SSIM of each image pair: prod_i cs_i^w_i over the first scales times ssim^w_last at the
 * last, with a 2x2 average pool between scales; per channel, then averaged over channels.
 * Values are floored at MIN_SIMILARITY before the powers (see there), so it never NaNs.
 */
export function msSsim(a: tf.Tensor4D, b: tf.Tensor4D, opts: MsSsimOptions): tf.Tensor1D {
  checkPair(a, b);
  const weights = opts.weights ?? MS_SSIM_WEIGHTS;
  const smallest = Math.min(a.shape[1], a.shape[2]) / 2 ** (weights.length - 1);
  if (smallest < 1) {
    throw new SsimInputError(
      `MS-SSIM with ${weights.length} scales needs images of at least ${2 ** (weights.length - 1)} pixels, got ${a.shape[1]}x${a.shape[2]}`,
    );
  }
  const r = resolveSsimOptions(opts);
  return tf.tidy(() => {
    let x = foldChannels(a);
    let y = foldChannels(b);
    let logSum: tf.Tensor1D | undefined;
    weights.forEach((weight, i) => {
      const last = i === weights.length - 1;
      const { ssim: s, cs } = ssimAndCs(x, y, r);
      const term = tf.mul(tf.log(tf.maximum(last ? s : cs, MIN_SIMILARITY)), weight) as tf.Tensor1D;
      logSum = logSum === undefined ? term : (tf.add(logSum, term) as tf.Tensor1D);
      if (!last) {
        x = tf.avgPool(x, 2, 2, 'valid');
        y = tf.avgPool(y, 2, 2, 'valid');
      }
    });
    if (logSum === undefined) throw new SsimInputError('MS-SSIM needs at least one scale weight');
    return perImage(tf.exp(logSum), a.shape[0]);
  });
}
