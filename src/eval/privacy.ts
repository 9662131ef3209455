// Do samples copy training images? Each sample's distance to its closest training image is set
// against the same distance of held-out images, which the model never saw: a generator that only
// learned the distribution puts about 1% of its samples closer to the training set than the
// held-out images' 1st percentile, one that reproduces training images puts many more there
// (distance to closest record, e.g. Yoon et al. 2020; Carlini et al. 2023 for diffusion models).
// The far end is read too: samples farther than the held-out 99th percentile are off the data.
// Blurry samples sit closer to every image than sharp images do to each other, which lowers their
// distances without any copying; so each sample is also asked whether its closest image among as
// many training as held-out images is a training one (Platzer & Reutterer 2021): 0.5 for samples
// that copy nothing, blurry or not, towards 1 for copies.
// Distances are Euclidean in the feature net's space, and in pixels as the root mean square
// difference per value in [-1, 1] units (the Euclidean distance / sqrt(values), same ranking).
import { tf } from '../util/tf.ts';
import { writeGrid } from '../run/images.ts';
import { subset, type LabelledImages } from './images.ts';

export interface Nearest {
  /** Per query, the Euclidean distance to its closest reference row. */
  distance: Float64Array;
  /** Per query, the index of that reference row. */
  index: Int32Array;
}

/**
 * Closest `reference` row of each `queries` row (rows of d values), by |q|^2 + |r|^2 - 2 q.r on the
 * backend, `chunk` rows of each side at a time so memory stays bounded; one read per query chunk.
 */
export async function nearestRows(
  queries: Float32Array,
  nQueries: number,
  reference: Float32Array,
  nReference: number,
  d: number,
  chunk = 512,
): Promise<Nearest> {
  if (nReference < 1) throw new RangeError('nearest rows: the reference set is empty');
  const distance = new Float64Array(nQueries).fill(Infinity);
  const index = new Int32Array(nQueries);
  for (let q0 = 0; q0 < nQueries; q0 += chunk) {
    const nq = Math.min(chunk, nQueries - q0);
    const q = tf.tensor2d(queries.subarray(q0 * d, (q0 + nq) * d), [nq, d]);
    try {
      for (let r0 = 0; r0 < nReference; r0 += chunk) {
        const nr = Math.min(chunk, nReference - r0);
        // Per query of the chunk: min squared distance and its argmin, side by side (nq x 2).
        const best = tf.tidy(() => {
          const r = tf.tensor2d(reference.subarray(r0 * d, (r0 + nr) * d), [nr, d]);
          const squared = tf.add(
            tf.sub(tf.sum(tf.square(q), 1, true), tf.mul(tf.matMul(q, r, false, true), 2)),
            tf.reshape(tf.sum(tf.square(r), 1), [1, nr]),
          );
          return tf.stack([tf.min(squared, 1), tf.cast(tf.argMin(squared, 1), 'float32')], 1);
        });
        let values: Float32Array;
        try {
          values = (await best.data()) as Float32Array;
        } finally {
          best.dispose();
        }
        for (let i = 0; i < nq; i++) {
          // Rounding can leave a tiny negative for identical rows.
          const dist = Math.sqrt(Math.max(values[2 * i], 0));
          if (dist < distance[q0 + i]) {
            distance[q0 + i] = dist;
            index[q0 + i] = r0 + values[2 * i + 1];
          }
        }
      }
    } finally {
      q.dispose();
    }
  }
  return { distance, index };
}

/** The p-th percentile (0..100) by linear interpolation between order statistics (numpy's default). */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) throw new RangeError('percentile of no values');
  const sorted = Float64Array.from(values).sort();
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.min(low + 1, sorted.length - 1);
  return sorted[low] + (rank - low) * (sorted[high] - sorted[low]);
}

/** Samples' distances to their closest training image, read against the held-out images' distances. */
export interface DistanceComparison {
  sample_median: number;
  heldout_median: number;
  sample_min: number;
  heldout_p1: number;
  heldout_p5: number;
  heldout_p99: number;
  /** Share of samples strictly closer than the held-out 1st / 5th percentile: about 0.01 / 0.05 for a generator that copies nothing. */
  share_below_heldout_p1: number;
  share_below_heldout_p5: number;
  /** Share of samples strictly farther than the held-out 99th percentile: about 0.01 when samples lie where the data does. */
  share_above_heldout_p99: number;
}

export function compareDistances(sample: ArrayLike<number>, heldOut: ArrayLike<number>): DistanceComparison {
  const p1 = percentile(heldOut, 1);
  const p5 = percentile(heldOut, 5);
  const p99 = percentile(heldOut, 99);
  const share = (keep: (v: number) => boolean): number => Array.from(sample).filter(keep).length / sample.length;
  return {
    sample_median: percentile(sample, 50),
    heldout_median: percentile(heldOut, 50),
    sample_min: Math.min(...Array.from(sample)),
    heldout_p1: p1,
    heldout_p5: p5,
    heldout_p99: p99,
    share_below_heldout_p1: share((v) => v < p1),
    share_below_heldout_p5: share((v) => v < p5),
    share_above_heldout_p99: share((v) => v > p99),
  };
}

export interface ClosestPair {
  /** Index of the sample among the generated images. */
  sample: number;
  /** Index of its closest image among the training images compared. */
  train: number;
  /** Root mean square pixel difference, [-1, 1] units. */
  pixel_distance: number;
}

/** The `count` samples closest (in pixels) to a training image, closest first, with that image. */
export function closestPairs(pixel: Nearest, count: number): ClosestPair[] {
  const order = Array.from(pixel.distance.keys()).sort((a, b) => pixel.distance[a] - pixel.distance[b] || a - b);
  return order.slice(0, count).map((i) => ({ sample: i, train: pixel.index[i], pixel_distance: pixel.distance[i] }));
}

/** Share of entries with a[i] < b[i], ties counting one half. */
export function shareCloser(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || a.length === 0)
    throw new RangeError(`shareCloser: need two equal non-empty lists, got ${a.length} and ${b.length}`);
  let closer = 0;
  for (let i = 0; i < a.length; i++) closer += a[i] < b[i] ? 1 : a[i] === b[i] ? 0.5 : 0;
  return closer / a.length;
}

/** Euclidean pixel distances to the root mean square difference per value. */
export function rmsDistances(nearest: Nearest, values: number): Nearest {
  return { distance: nearest.distance.map((v) => v / Math.sqrt(values)), index: nearest.index };
}

/** How close samples come to training images, against held-out images (./privacy.ts). */
export interface SamplePrivacy {
  n_samples: number;
  n_heldout: number;
  /** Training images compared against (the model's side). */
  n_train: number;
  feature: DistanceComparison;
  /** Root mean square difference per value, [-1, 1] units. */
  pixel: DistanceComparison;
  /** Of the samples, the share whose closest of n_heldout training and n_heldout held-out images is a training one (0.5: no copying). */
  share_closer_to_train: { feature: number; pixel: number };
  /** The samples closest to a training image in pixels, closest first. */
  closest_pairs: ClosestPair[];
  /** Those pairs side by side, a PNG beside eval.json; null when none was written. */
  grid: string | null;
}

/** Rows of images at one side, and their feature vectors. */
export interface ImagesAndFeatures {
  images: LabelledImages;
  features: Float32Array;
}

export const CLOSEST_PAIRS = 8;

/**
 * Nearest-training distances of samples and held-out images, in feature space and in pixels;
 * `members` are as many training images (indices into `train`) as there are held-out images.
 */
export async function samplePrivacy(
  samples: ImagesAndFeatures,
  heldOut: ImagesAndFeatures,
  train: ImagesAndFeatures,
  members: readonly number[],
  featureDim: number,
): Promise<Omit<SamplePrivacy, 'grid'>> {
  const { images: t } = train;
  if (samples.images.size !== t.size || heldOut.images.size !== t.size || samples.images.channels !== t.channels) {
    throw new RangeError(`privacy: samples, held-out and training images must share one side and channel count`);
  }
  const values = t.size * t.size * t.channels;
  const pixels = async (set: LabelledImages): Promise<Nearest> =>
    rmsDistances(await nearestRows(set.images, set.n, t.images, t.n, values), values);
  const features = async (set: ImagesAndFeatures): Promise<Nearest> =>
    nearestRows(set.features, set.images.n, train.features, t.n, featureDim);
  const samplePixels = await pixels(samples.images);
  const memberImages = subset(t, members);
  const memberFeatures = new Float32Array(members.length * featureDim);
  members.forEach((m, k) => memberFeatures.set(train.features.subarray(m * featureDim, (m + 1) * featureDim), k * featureDim));
  const s = samples.images;
  const closerToTrain = async (trainRows: Float32Array, heldOutRows: Float32Array, sampleRows: Float32Array, d: number): Promise<number> =>
    shareCloser(
      (await nearestRows(sampleRows, s.n, trainRows, members.length, d)).distance,
      (await nearestRows(sampleRows, s.n, heldOutRows, heldOut.images.n, d)).distance,
    );
  return {
    n_samples: samples.images.n,
    n_heldout: heldOut.images.n,
    n_train: t.n,
    feature: compareDistances((await features(samples)).distance, (await features(heldOut)).distance),
    pixel: compareDistances(samplePixels.distance, (await pixels(heldOut.images)).distance),
    share_closer_to_train: {
      feature: await closerToTrain(memberFeatures, heldOut.features, samples.features, featureDim),
      pixel: await closerToTrain(memberImages.images, heldOut.images.images, s.images, values),
    },
    closest_pairs: closestPairs(samplePixels, CLOSEST_PAIRS),
  };
}

/** The pairs as a two-row grid: samples above, their closest training images below. */
export async function writeClosestPairsGrid(
  file: string,
  pairs: readonly ClosestPair[],
  samples: LabelledImages,
  train: LabelledImages,
): Promise<void> {
  const per = train.size * train.size * train.channels;
  const data = new Float32Array(2 * pairs.length * per);
  pairs.forEach((pair, k) => {
    data.set(samples.images.subarray(pair.sample * per, (pair.sample + 1) * per), k * per);
    data.set(train.images.subarray(pair.train * per, (pair.train + 1) * per), (pairs.length + k) * per);
  });
  await writeGrid(
    file,
    { data, n: 2 * pairs.length, size: train.size, channels: train.channels },
    { cols: pairs.length, rowLabels: ['sample', 'closest training'] },
  );
}
