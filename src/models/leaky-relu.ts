// LeakyReLU with a cheaper backward pass, saved as Keras' standard `LeakyReLU`.
//
// TF.js differentiates leakyRelu as where(x > 0, dy, alpha * dy): a Greater producing a bool
// tensor and a Select reading three (bench:kernels' LeakyReLU case). Here the backward is
// leakyReluGrad (../backend/channel-ops.ts): one SIMD pass on wasm, dy * step(x, alpha)
// elsewhere. Same class name, config and (no) weights as the stock layer, so checkpoints load
// anywhere; registering it makes this process deserialise them into this layer.
import { tf } from '../util/tf.ts';
import { leakyReluGrad } from '../backend/channel-ops.ts';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export function leakyReluWithStepGrad(x: tf.Tensor, alpha: number): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor;
    (args[1] as tf.GradSaveFunc)([input]);
    return {
      value: tf.leakyRelu(input, alpha),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => leakyReluGrad(dy, saved[0], alpha),
    };
  });
  return op(x);
}

export class LeakyRelu extends tf.layers.Layer {
  static className = 'LeakyReLU';
  readonly alpha: number;

  constructor(args: LayerArgs & { alpha?: number } = {}) {
    super(args);
    // Keras' default slope, as the stock layer's.
    this.alpha = args.alpha ?? 0.3;
    this.supportsMasking = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return leakyReluWithStepGrad(Array.isArray(inputs) ? inputs[0] : inputs, this.alpha);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { alpha: this.alpha, ...super.getConfig() };
  }
}
tf.serialization.registerClass(LeakyRelu);
