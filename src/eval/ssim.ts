// SSIM and MS-SSIM as evaluation numbers: only windows that lie wholly inside the image count, as
// skimage's structural_similarity (gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
// and pytorch_msssim compute them. The training loss (src/losses/ssim.ts) zero-pads instead, which
// makes border windows see black and lowers every score; its building blocks are reused here with
// a 'valid' filter.
//
// MS-SSIM at small sides: pytorch_msssim refuses sides <= (win - 1) * 2^4 = 160 for its 5 scales.
// Here the window stays 11 (sigma 1.5) and the number of scales shrinks instead: the most scales L
// <= 5 with side > (win - 1) * 2^(L - 1), so every scale keeps whole windows (64 px: 3 scales,
// 32 px: 2, 256 px: 5). Fewer than 5 scales use Wang et al.'s first L weights renormalised to sum 1;
// at 5 scales the published weights, so large images score exactly as pytorch_msssim.
import { tf } from '../util/tf.ts';
import {
  checkPair,
  foldChannels,
  MS_SSIM_WEIGHTS,
  perImage,
  resolveSsimOptions,
  ssimAndCs,
  SsimInputError,
  type ResolvedSsimOptions,
} from '../losses/ssim.ts';

/** Window side and Gaussian sigma of every eval SSIM number. */
export const EVAL_SSIM_WINDOW = 11;
export const EVAL_SSIM_SIGMA = 1.5;

function resolved(dataRange: number): ResolvedSsimOptions {
  return resolveSsimOptions({ dataRange, windowSize: EVAL_SSIM_WINDOW, sigma: EVAL_SSIM_SIGMA });
}

/** The separable Gaussian filter evaluated only where the window fits: each side shrinks by size - 1. */
export function validBlur(x: tf.Tensor4D, window: Float32Array): tf.Tensor4D {
  const size = window.length;
  return tf.tidy(() => {
    const vertical = tf.tensor4d(window, [size, 1, 1, 1]);
    const horizontal = tf.tensor4d(window, [1, size, 1, 1]);
    return tf.conv2d(tf.conv2d(x, vertical, 1, 'valid'), horizontal, 1, 'valid');
  });
}

function checkSide(a: tf.Tensor4D): number {
  const side = Math.min(a.shape[1], a.shape[2]);
  if (side < EVAL_SSIM_WINDOW)
    throw new SsimInputError(
      `SSIM on valid ${EVAL_SSIM_WINDOW}x${EVAL_SSIM_WINDOW} windows needs images of at least ${EVAL_SSIM_WINDOW} pixels, got ${a.shape[1]}x${a.shape[2]}`,
    );
  return side;
}

/** Number of MS-SSIM scales for images whose smaller side is `side` (see the header). */
export function msSsimLevels(side: number): number {
  if (side < EVAL_SSIM_WINDOW) throw new SsimInputError(`MS-SSIM needs images of at least ${EVAL_SSIM_WINDOW} pixels, got ${side}`);
  let levels = 1;
  while (levels < MS_SSIM_WEIGHTS.length && side > (EVAL_SSIM_WINDOW - 1) * 2 ** levels) levels++;
  return levels;
}

/** Per-scale exponents for `levels` scales: the published five, or the first `levels` renormalised. */
export function msSsimWeights(levels: number): number[] {
  const first = MS_SSIM_WEIGHTS.slice(0, levels);
  if (levels === MS_SSIM_WEIGHTS.length) return [...first];
  const total = first.reduce((s, w) => s + w, 0);
  return first.map((w) => w / total);
}

/** pytorch_msssim's 2x2 average pool between scales: odd sides get a zero border that counts in the mean. */
export function halveForNextScale(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const padded =
      h % 2 || w % 2
        ? tf.pad(x, [
            [0, 0],
            [h % 2, h % 2],
            [w % 2, w % 2],
            [0, 0],
          ])
        : x;
    return tf.avgPool(padded, 2, 2, 'valid');
  });
}

/** Valid-window SSIM of each image pair, mean over channels: a length-N vector. */
export function evalSsim(a: tf.Tensor4D, b: tf.Tensor4D, dataRange: number): tf.Tensor1D {
  checkPair(a, b);
  checkSide(a);
  const r = resolved(dataRange);
  return tf.tidy(() => perImage(ssimAndCs(foldChannels(a), foldChannels(b), r, validBlur).ssim, a.shape[0]));
}

/**
 * Valid-window MS-SSIM of each image pair: prod over scales of relu(cs)^w, relu(ssim)^w at the last
 * scale, per channel, then the mean over channels (pytorch_msssim's order and clamping).
 */
export function evalMsSsim(a: tf.Tensor4D, b: tf.Tensor4D, dataRange: number): tf.Tensor1D {
  checkPair(a, b);
  const weights = msSsimWeights(msSsimLevels(checkSide(a)));
  const r = resolved(dataRange);
  return tf.tidy(() => {
    let x = foldChannels(a);
    let y = foldChannels(b);
    let product: tf.Tensor1D = tf.ones([x.shape[0]]);
    weights.forEach((weight, i) => {
      const last = i === weights.length - 1;
      const { ssim, cs } = ssimAndCs(x, y, r, validBlur);
      product = tf.mul(product, tf.pow(tf.relu(last ? ssim : cs), weight));
      if (!last) {
        x = halveForNextScale(x);
        y = halveForNextScale(y);
      }
    });
    return perImage(product, a.shape[0]);
  });
}
