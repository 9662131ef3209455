// The small CNN classifier behind the sample-quality and TSTR numbers. Without internet there are
// no Inception weights, so the Frechet/kernel distances are measured in the feature space of this
// network, trained on the real training split of the same dataset: a *domain feature distance*,
// not FID, and only comparable between runs that share (dataset file, architecture version, recipe,
// seed), which is exactly the cache key. Training is deterministic: seeded initialisers, a seeded
// batch order, no dropout.
import { tf } from '../util/tf.ts';
import { concatFloat32 } from '../util/float32.ts';
import { Conv2D } from '../models/conv2d.ts';
import { hashKeys, mulberry32, Stream } from '../util/rng.ts';
import type { LabelledImages } from './images.ts';

/** Bump when the architecture or the preprocessing changes: old caches and numbers stop matching. */
export const FEATURE_NET_VERSION = 1;
/** Images are resized to this side before the network, so runs at different image sizes compare. */
export const FEATURE_INPUT_SIZE = 32;
const FILTERS = [16, 32, 64] as const;
/** Width of the feature vector: the global average pool over the last conv block. */
export const FEATURE_DIM = FILTERS[FILTERS.length - 1];

/** How a classifier is trained; part of the cache key. */
export interface TrainRecipe {
  steps: number;
  batchSize: number;
  lr: number;
}

export { DEFAULT_RECIPE } from './defaults.ts';

/** What the classifier predicts: the dataset's labels, or (unlabelled data) the rotation applied. */
export type ClassifierTask = { kind: 'class' | 'multilabel'; width: number } | { kind: 'rotation'; width: 4 };

export class Classifier {
  private constructor(
    readonly net: tf.LayersModel,
    readonly task: ClassifierTask,
    readonly channels: 1 | 3,
  ) {}

  /** Architecture v1: three stride-2 3x3 conv blocks (16, 32, 64, ReLU), global average pool, dense head. */
  static create(task: ClassifierTask, channels: 1 | 3, seed: number): Classifier {
    const input = tf.input({ shape: [FEATURE_INPUT_SIZE, FEATURE_INPUT_SIZE, channels] });
    let x: tf.SymbolicTensor = input;
    FILTERS.forEach((filters, i) => {
      // The models' Conv2D: the same layer whether built here or loaded from the cache.
      x = new Conv2D({
        filters,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed: hashKeys(seed, Stream.eval, 100, i) }),
        name: `conv${i}`,
      }).apply(x) as tf.SymbolicTensor;
    });
    const features = tf.layers.globalAveragePooling2d({ name: 'features' }).apply(x) as tf.SymbolicTensor;
    const logits = tf.layers
      .dense({
        units: task.width,
        kernelInitializer: tf.initializers.glorotUniform({ seed: hashKeys(seed, Stream.eval, 101) }),
        name: 'logits',
      })
      .apply(features) as tf.SymbolicTensor;
    return new Classifier(tf.model({ inputs: input, outputs: [features, logits] }), task, channels);
  }

  static fromNet(net: tf.LayersModel, task: ClassifierTask, channels: 1 | 3): Classifier {
    return new Classifier(net, task, channels);
  }

  /** NHWC [-1, 1] images at any side to the network's input side. */
  private prepare(images: tf.Tensor4D): tf.Tensor4D {
    return toSide(images, FEATURE_INPUT_SIZE);
  }

  private forward(images: tf.Tensor4D): [tf.Tensor2D, tf.Tensor2D] {
    const [features, logits] = this.net.apply(this.prepare(images), { training: false }) as tf.Tensor[];
    return [features as tf.Tensor2D, logits as tf.Tensor2D];
  }

  private lossOf(images: tf.Tensor4D, targets: tf.Tensor2D): tf.Scalar {
    const logits = this.forward(images)[1];
    return this.task.kind === 'multilabel'
      ? tf.losses.sigmoidCrossEntropy(targets, logits)
      : tf.losses.softmaxCrossEntropy(targets, logits);
  }

  /** Adam on seeded mini-batches drawn epoch by epoch from a seeded permutation of `data`. */
  train(data: LabelledImages, recipe: TrainRecipe, seed: number): void {
    const optimizer = tf.train.adam(recipe.lr);
    const random = mulberry32(hashKeys(seed, Stream.eval, 102));
    let order: number[] = [];
    for (let step = 0; step < recipe.steps; step++) {
      const indices: number[] = [];
      while (indices.length < Math.min(recipe.batchSize, data.n)) {
        if (order.length === 0) order = shuffled(data.n, random);
        indices.push(order.pop() as number);
      }
      const rotations = this.task.kind === 'rotation' ? indices.map(() => Math.floor(random() * 4)) : undefined;
      tf.tidy(() => {
        const { images, targets } = this.batch(data, indices, rotations);
        const cost = optimizer.minimize(() => this.lossOf(images, targets), true);
        cost?.dispose();
      });
    }
    optimizer.dispose();
  }

  /** Inputs and targets of a batch: the dataset labels, or one-hot rotation classes. */
  batch(data: LabelledImages, indices: readonly number[], rotations?: readonly number[]): { images: tf.Tensor4D; targets: tf.Tensor2D } {
    return tf.tidy(() => {
      const images = gatherImages(data, indices);
      if (this.task.kind === 'rotation') {
        const turns = rotations ?? indices.map(() => 0);
        const rotated = tf.concat(indices.map((_, k) => rot90(images.slice([k, 0, 0, 0], [1, -1, -1, -1]), turns[k])));
        return { images: rotated as tf.Tensor4D, targets: tf.oneHot(tf.tensor1d([...turns], 'int32'), 4).toFloat() as tf.Tensor2D };
      }
      const w = data.labelWidth;
      const rows = new Float32Array(indices.length * w);
      indices.forEach((idx, k) => rows.set(data.labels.subarray(idx * w, (idx + 1) * w), k * w));
      return { images, targets: tf.tensor2d(rows, [indices.length, w]) };
    });
  }

  /** Feature vectors (n x FEATURE_DIM) of the images of `data`, batch by batch. */
  features(data: LabelledImages, batchSize = 128): Promise<Float32Array> {
    return mapImageBatches(data, batchSize, (b) => this.forward(b)[0]);
  }

  /** Class probabilities (softmax) or finding probabilities (sigmoid), n x width. */
  probabilities(data: LabelledImages, batchSize = 128): Promise<Float32Array> {
    return mapImageBatches(data, batchSize, (b) => {
      const logits = this.forward(b)[1];
      return this.task.kind === 'multilabel' ? tf.sigmoid(logits) : tf.softmax(logits);
    });
  }

  dispose(): void {
    this.net.dispose();
  }
}

function shuffled(n: number, random: () => number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Rotate one NHWC image (batch of 1) by k quarter turns counter-clockwise. */
function rot90(image: tf.Tensor4D, k: number): tf.Tensor4D {
  let x = image;
  for (let i = 0; i < k % 4; i++) x = tf.reverse(tf.transpose(x, [0, 2, 1, 3]), 1);
  return x;
}

/** Bilinear resize of NHWC images to side x side (unchanged when already that side). */
function toSide(images: tf.Tensor4D, side: number): tf.Tensor4D {
  if (images.shape[1] === side && images.shape[2] === side) return images;
  return tf.image.resizeBilinear(images, [side, side]);
}

/** `data` at another side, resized as the classifiers resize their inputs. */
export async function resizedImages(data: LabelledImages, side: number, batchSize = 128): Promise<LabelledImages> {
  if (data.size === side) return data;
  return { ...data, images: await mapImageBatches(data, batchSize, (b) => toSide(b, side)), size: side };
}

/** `f` over the images of `data` batch by batch, the outputs' values concatenated (one asynchronous read per batch). */
async function mapImageBatches(data: LabelledImages, batchSize: number, f: (batch: tf.Tensor4D) => tf.Tensor): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for (let start = 0; start < data.n; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, data.n - start) }, (_, k) => start + k);
    const out = tf.tidy(() => f(gatherImages(data, indices)));
    try {
      parts.push((await out.data()) as Float32Array);
    } finally {
      out.dispose();
    }
  }
  return concatFloat32(parts);
}

export function gatherImages(data: LabelledImages, indices: readonly number[]): tf.Tensor4D {
  const per = data.size * data.size * data.channels;
  const out = new Float32Array(indices.length * per);
  indices.forEach((idx, k) => out.set(data.images.subarray(idx * per, (idx + 1) * per), k * per));
  return tf.tensor4d(out, [indices.length, data.size, data.size, data.channels]);
}
