// Batch normalisation with a closed-form backward pass.
//
// tf.layers.batchNormalization differentiates through tf.moments and the batchNorm kernel: its
// gradient tiles the per-channel statistics to the full activation shape and its reductions over
// the leading axes transpose the whole activation first (about 15% of a wasm training step). This
// layer computes the same forward values and moving statistics, but its training path is one
// tf.customGrad op with the textbook backward (Ioffe & Szegedy 2015):
//   dx = gamma / sigma * (dy - mean(dy) - xhat * mean(dy * xhat)), dbeta = sum(dy), dgamma = sum(dy * xhat)
// written as per-channel reductions and per-channel affine maps (../backend/channel-ops.ts): on
// wasm each is one SIMD pass, so the forward reads the activation three times and writes only the
// output, the backward reads dy and x twice and writes only dx, and nothing but the input is saved
// (xhat is recomputed from it). `npm run bench:kernels` times it against the stock layer.
//
// Moving statistics follow PyTorch's BatchNorm (running mean, unbiased running variance), but per
// optimizer step rather than per forward call when updates are deferred: then the statistics of
// every micro-batch and worker of a step are pooled first, so they do not depend on how the global
// batch was split.
//
// It serialises as Keras' standard `BatchNormalization` (same class name, config keys and weight
// names gamma, beta, moving_mean, moving_variance), so a saved model.json loads with
// tf.loadLayersModel in a browser. Registering it under that class name also makes this process
// deserialise checkpoints into this faster layer.
import { tf } from '../util/tf.ts';
import { channelAffine, channelSquaredDeviationSum, channelSum, channelSumAndDot } from '../backend/channel-ops.ts';

type Kwargs = Parameters<tf.layers.Layer['call']>[1];
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface BatchNormArgs extends LayerArgs {
  /** Keras convention: new = momentum * old + (1 - momentum) * batch. PyTorch's momentum 0.1 is 0.9 here. */
  momentum?: number;
  epsilon?: number;
}

/** The config keys the standard layer writes and reads; initialisers are always the defaults here. */
const STANDARD_INITIALIZERS = {
  betaInitializer: { className: 'Zeros', config: {} },
  gammaInitializer: { className: 'Ones', config: {} },
  movingMeanInitializer: { className: 'Zeros', config: {} },
  movingVarianceInitializer: { className: 'Ones', config: {} },
};

export class BatchNormLayerError extends Error {
  override name = 'BatchNormLayerError';
}

type Weight = ReturnType<tf.layers.Layer['addWeight']>;

/**
 * Per-channel sums over the values a layer normalised in training since its last update, shifted by
 * its moving mean at the time: count, sum(x - c) and sum((x - c)^2). Sums pool by addition, across
 * micro-batches and across workers alike.
 */
export interface PendingStatistics {
  count: number;
  shiftedSum: tf.Tensor1D;
  shiftedSquares: tf.Tensor1D;
}

/**
 * Training-mode batch norm of `x` over all axes but the last, with a closed-form gradient.
 * Returns the normalised output and, kept for the caller to dispose, the batch mean and (biased)
 * variance that feed the moving averages.
 */
export function batchNormTraining(
  x: tf.Tensor,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
): { y: tf.Tensor; mean: tf.Tensor1D; variance: tf.Tensor1D } {
  let mean: tf.Tensor1D | undefined;
  let variance: tf.Tensor1D | undefined;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, g, b] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const count = input.size / input.shape[input.rank - 1];
    // Two-pass variance (mean of squared deviations): E[x^2] - mean^2 cancels badly in float32.
    const batchMean = tf.div(channelSum(input), count) as tf.Tensor1D;
    const batchVariance = tf.div(channelSquaredDeviationSum(input, batchMean), count) as tf.Tensor1D;
    // The forward runs inside a tidy of the engine: keep the statistics for the moving averages.
    mean = tf.keep(batchMean);
    variance = tf.keep(batchVariance);
    const invStd = tf.rsqrt(tf.add(batchVariance, epsilon)) as tf.Tensor1D;
    // y = (x - mean) * invStd * gamma + beta, as one affine map per channel.
    const scale = tf.mul(g, invStd) as tf.Tensor1D;
    const value = channelAffine(input, scale, tf.sub(b, tf.mul(batchMean, scale)) as tf.Tensor1D);
    save([input, batchMean, invStd, g]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [savedInput, savedMean, savedInvStd, savedGamma] = saved as [tf.Tensor, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
        // With xhat = (x - mean) * invStd: dbeta = sum(dy), dgamma = sum(dy * xhat), and
        // dx = gamma * invStd * (dy - dbeta / n - xhat * dgamma / n) = A * dy + B * x + K per channel.
        const { sum: dBeta, dot } = channelSumAndDot(dy, savedInput, savedMean);
        const dGamma = tf.mul(dot, savedInvStd) as tf.Tensor1D;
        const a = tf.mul(savedGamma, savedInvStd) as tf.Tensor1D;
        const b = tf.neg(tf.mul(tf.mul(a, savedInvStd), tf.div(dGamma, count))) as tf.Tensor1D;
        const k = tf.sub(tf.neg(tf.mul(a, tf.div(dBeta, count))), tf.mul(b, savedMean)) as tf.Tensor1D;
        return [channelAffine(dy, a, k, savedInput, b), dGamma, dBeta];
      },
    };
  });
  const y = op(x, gamma, beta);
  if (mean === undefined || variance === undefined) throw new BatchNormLayerError('batch statistics were not computed');
  return { y, mean, variance };
}

export class BatchNorm extends tf.layers.Layer {
  static className = 'BatchNormalization';
  readonly axis: number;
  readonly momentum: number;
  readonly epsilon: number;
  private gamma?: Weight;
  private beta?: Weight;
  private movingMean?: Weight;
  private movingVariance?: Weight;
  private pending?: PendingStatistics;
  /**
   * Off (the default), every training call updates the moving averages from its own batch. On, calls
   * only add to the pending statistics, and the caller commits them once per optimizer step (the
   * trainer, after pooling them over micro-batches and workers).
   */
  deferUpdates = false;

  constructor(args: BatchNormArgs & { axis?: number; center?: boolean; scale?: boolean } = {}) {
    super(args);
    if (args.center === false || args.scale === false) {
      throw new BatchNormLayerError(
        `layer '${args.name ?? '?'}': only center and scale true are supported, got ${JSON.stringify({ center: args.center, scale: args.scale })}`,
      );
    }
    this.axis = args.axis ?? -1;
    this.momentum = args.momentum ?? 0.99;
    this.epsilon = args.epsilon ?? 1e-3;
    this.supportsMasking = true;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    // Keras files may name the channel axis by index (3 for NHWC): only the last axis is supported.
    if (this.axis !== -1 && this.axis !== shape.length - 1) {
      throw new BatchNormLayerError(
        `layer '${this.name}': only the last axis can be normalised, got axis ${this.axis} of rank ${shape.length}`,
      );
    }
    const channels = shape[shape.length - 1];
    if (channels == null) throw new BatchNormLayerError(`layer '${this.name}': the channel axis needs a defined size`);
    this.gamma = this.addWeight('gamma', [channels], 'float32', tf.initializers.ones(), undefined, true);
    this.beta = this.addWeight('beta', [channels], 'float32', tf.initializers.zeros(), undefined, true);
    this.movingMean = this.addWeight('moving_mean', [channels], 'float32', tf.initializers.zeros(), undefined, false);
    this.movingVariance = this.addWeight('moving_variance', [channels], 'float32', tf.initializers.ones(), undefined, false);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const { gamma, beta, movingMean, movingVariance } = this.weightsOrThrow();
    if (kwargs['training'] !== true) {
      return tf.tidy(() => {
        // tf.batchNorm needs rank-matched parameters for rank 2 and broadcasts otherwise.
        return tf.batchNorm(x, movingMean.read(), movingVariance.read(), beta.read(), gamma.read(), this.epsilon);
      });
    }
    const { y, mean, variance } = batchNormTraining(x, gamma.read() as tf.Tensor1D, beta.read() as tf.Tensor1D, this.epsilon);
    this.recordBatch(mean, variance, x.size / (x.shape[x.rank - 1] ?? 1));
    mean.dispose();
    variance.dispose();
    if (!this.deferUpdates) this.commitStatistics();
    return y;
  }

  /**
   * Adds one batch's per-channel statistics to the pending sums, shifted by the moving mean so that
   * pooling in float32 does not cancel: sum(x - c) = n (mean - c), sum((x - c)^2) = n (var + (mean - c)^2).
   */
  private recordBatch(mean: tf.Tensor1D, variance: tf.Tensor1D, count: number): void {
    const { movingMean } = this.weightsOrThrow();
    const before = this.pending;
    const sums = tf.tidy(() => {
      const d = tf.sub(mean, movingMean.read());
      const shiftedSum = tf.mul(d, count) as tf.Tensor1D;
      const shiftedSquares = tf.mul(tf.add(variance, tf.square(d)), count) as tf.Tensor1D;
      return before
        ? {
            shiftedSum: tf.add(before.shiftedSum, shiftedSum) as tf.Tensor1D,
            shiftedSquares: tf.add(before.shiftedSquares, shiftedSquares) as tf.Tensor1D,
          }
        : { shiftedSum, shiftedSquares };
    });
    // The forward may run inside a tidy of the engine: the sums outlive it until they are committed.
    this.pending = {
      count: (before?.count ?? 0) + count,
      shiftedSum: tf.keep(sums.shiftedSum),
      shiftedSquares: tf.keep(sums.shiftedSquares),
    };
    if (before) tf.dispose([before.shiftedSum, before.shiftedSquares]);
  }

  /** The statistics not yet folded into the moving averages (zero sums when no batch was seen); owned by the layer. */
  pendingStatistics(): PendingStatistics {
    if (!this.pending) {
      const channels = this.weightsOrThrow().gamma.shape[0] ?? 0;
      this.pending = { count: 0, shiftedSum: tf.zeros([channels]), shiftedSquares: tf.zeros([channels]) };
    }
    return this.pending;
  }

  /**
   * Folds the pending statistics (or `pooled`, the same sums gathered over every micro-batch and
   * worker of the step) into the moving averages as one update: the pooled mean and the unbiased
   * pooled variance (PyTorch's running_var), whose spread between batches counts too. Then clears them.
   */
  commitStatistics(pooled: PendingStatistics | undefined = this.pending): void {
    const { movingMean, movingVariance } = this.weightsOrThrow();
    if (pooled && pooled.count > 0) {
      tf.tidy(() => {
        const n = pooled.count;
        const shift = tf.div(pooled.shiftedSum, n);
        const mean = tf.add(movingMean.read(), shift);
        const biased = tf.relu(tf.sub(tf.div(pooled.shiftedSquares, n), tf.square(shift)));
        const variance = tf.mul(biased, n / Math.max(n - 1, 1));
        const decay = 1 - this.momentum;
        movingMean.write(tf.sub(movingMean.read(), tf.mul(tf.sub(movingMean.read(), mean), decay)));
        movingVariance.write(tf.sub(movingVariance.read(), tf.mul(tf.sub(movingVariance.read(), variance), decay)));
      });
    }
    this.discardStatistics();
  }

  /** Drops the pending statistics without updating (a step that is not applied). */
  discardStatistics(): void {
    if (this.pending) tf.dispose([this.pending.shiftedSum, this.pending.shiftedSquares]);
    this.pending = undefined;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      axis: this.axis,
      momentum: this.momentum,
      epsilon: this.epsilon,
      center: true,
      scale: true,
      ...STANDARD_INITIALIZERS,
      betaRegularizer: null,
      gammaRegularizer: null,
      betaConstraint: null,
      gammaConstraint: null,
      ...super.getConfig(),
    };
  }

  private weightsOrThrow(): { gamma: Weight; beta: Weight; movingMean: Weight; movingVariance: Weight } {
    const { gamma, beta, movingMean, movingVariance } = this;
    if (!gamma || !beta || !movingMean || !movingVariance) throw new BatchNormLayerError(`layer '${this.name}' used before build`);
    return { gamma, beta, movingMean, movingVariance };
  }
}
tf.serialization.registerClass(BatchNorm);

/** The BatchNorm layers of these networks, ordered by name (the same order in every process). */
export function batchNormLayers(networks: readonly tf.LayersModel[]): BatchNorm[] {
  return networks
    .flatMap((network) => network.layers.filter((layer): layer is BatchNorm => layer instanceof BatchNorm))
    .sort((a, b) => a.name.localeCompare(b.name));
}
