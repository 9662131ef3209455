// Per-image quality of a restoration against the clean image, in the eval's conventions (src/eval:
// [-1, 1] units, data range 2, SSIM on valid 11x11 Gaussian windows). For imputation, on the
// missing pixels only: PSNR from the squared error over missing values; SSIM as the mean of the
// SSIM map over the valid windows centred on a missing pixel (NaN when no such window exists).
import { tf } from '../util/tf.ts';
import { DATA_RANGE, psnrOf } from '../eval/reconstruction.ts';
import { EVAL_SSIM_SIGMA, EVAL_SSIM_WINDOW, evalSsim, validBlur } from '../eval/ssim.ts';
import { foldChannels, resolveSsimOptions } from '../losses/ssim.ts';
import type { ImageStack } from '../run/images.ts';

/** PSNR (dB) of each image over all its values. */
export function psnrPerImage(predicted: Float32Array, target: ImageStack): number[] {
  return maskedPsnrPerImage(predicted, target, undefined);
}

/** PSNR (dB) of each image over the values of pixels whose mask is 1 (all values without a mask). */
export function maskedPsnrPerImage(predicted: Float32Array, target: ImageStack, masks: Uint8Array | undefined): number[] {
  const { n, size, channels } = target;
  const per = size * size;
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    let se = 0;
    let count = 0;
    for (let p = 0; p < per; p++) {
      if (masks && masks[k * per + p] !== 1) continue;
      for (let c = 0; c < channels; c++) {
        const i = (k * per + p) * channels + c;
        se += (predicted[i]! - target.data[i]!) ** 2;
        count++;
      }
    }
    out.push(count > 0 ? psnrOf(se / count) : NaN);
  }
  return out;
}

function tensorOf(data: Float32Array, t: ImageStack): tf.Tensor4D {
  return tf.tensor4d(data, [t.n, t.size, t.size, t.channels]);
}

/** SSIM of each image (valid windows, mean over channels), as src/eval reports it. */
export async function ssimPerImage(predicted: Float32Array, target: ImageStack): Promise<number[]> {
  const v = tf.tidy(() => evalSsim(tensorOf(predicted, target), tensorOf(target.data, target), DATA_RANGE));
  try {
    return Array.from(await v.data());
  } finally {
    v.dispose();
  }
}

/** The SSIM map on valid windows: (n * channels) x (size - 10) x (size - 10) x 1, image-major. */
function ssimMap(a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D {
  const r = resolveSsimOptions({ dataRange: DATA_RANGE, windowSize: EVAL_SSIM_WINDOW, sigma: EVAL_SSIM_SIGMA });
  return tf.tidy(() => {
    const x = foldChannels(a);
    const y = foldChannels(b);
    const [muX, muY, exx, eyy, exy] = [x, y, tf.mul(x, x), tf.mul(y, y), tf.mul(x, y)].map((m) => validBlur(m as tf.Tensor4D, r.window));
    const muXX = tf.mul(muX!, muX!);
    const muYY = tf.mul(muY!, muY!);
    const muXY = tf.mul(muX!, muY!);
    const cs = tf.div(tf.add(tf.mul(tf.sub(exy!, muXY), 2), r.c2), tf.add(tf.add(tf.sub(exx!, muXX), tf.sub(eyy!, muYY)), r.c2));
    const luminance = tf.div(tf.add(tf.mul(muXY, 2), r.c1), tf.add(tf.add(muXX, muYY), r.c1));
    return tf.mul(luminance, cs) as tf.Tensor4D;
  });
}

/** Mean SSIM over the valid windows centred on a missing pixel, per image (mean over channels). */
export async function maskedSsimPerImage(predicted: Float32Array, target: ImageStack, masks: Uint8Array): Promise<number[]> {
  const { n, size, channels } = target;
  const half = (EVAL_SSIM_WINDOW - 1) / 2;
  const inner = size - 2 * half;
  if (inner < 1)
    throw new RangeError(
      `SSIM on valid ${EVAL_SSIM_WINDOW}x${EVAL_SSIM_WINDOW} windows needs images of at least ${EVAL_SSIM_WINDOW} pixels, got ${size}`,
    );
  const map = tf.tidy(() => ssimMap(tensorOf(predicted, target), tensorOf(target.data, target)));
  let values: Float32Array;
  try {
    values = (await map.data()) as Float32Array;
  } finally {
    map.dispose();
  }
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    let sum = 0;
    let count = 0;
    for (let c = 0; c < channels; c++) {
      const base = (k * channels + c) * inner * inner;
      for (let y = 0; y < inner; y++)
        for (let x = 0; x < inner; x++) {
          if (masks[k * size * size + (y + half) * size + x + half] !== 1) continue;
          sum += values[base + y * inner + x]!;
          count++;
        }
    }
    out.push(count > 0 ? sum / count : NaN);
  }
  return out;
}

/** Mean of the finite values (NaN when none). */
export function finiteMean(xs: readonly number[]): number {
  const finite = xs.filter(Number.isFinite);
  return finite.length > 0 ? finite.reduce((s, v) => s + v, 0) / finite.length : NaN;
}
