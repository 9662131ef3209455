// Conv2D whose backward pass computes only the gradients that are asked for.
//
// tfjs-layers' Conv2D runs tf.fused.conv2d, whose gradient is one tf.customGrad function that
// computes the input, filter and bias gradients together. A backward walk that needs only one of
// them still pays for all: differentiating the encoder's objective through the discriminator
// (input gradients only) also ran every discriminator filter gradient, 14 of the 46
// Conv2DBackpropFilter calls of a VAE-GAN step, and the first layer of every encoder computed an
// input gradient of the images. Here the conv and the bias add are separate ops, each with its
// own per-input gradient, so tf.js differentiates only along the paths that lead to the
// variables being trained. Same class name, config and weights as the stock layer (it is the stock
// layer with another call()), so checkpoints are standard Keras Conv2D layers; registering it
// makes this process load them into this class.
import { tf } from '../util/tf.ts';

type Kwargs = Parameters<tf.layers.Layer['call']>[1];
type ConvArgs = Parameters<typeof tf.layers.conv2d>[0];

/** What call() reads of the stock layer's state (fields of tfjs-layers' BaseConv, set by build()). */
interface ConvState {
  kernel: { read(): tf.Tensor };
  bias: { read(): tf.Tensor } | null;
  strides: [number, number];
  padding: 'same' | 'valid';
  dataFormat: 'channelsLast' | 'channelsFirst';
  dilationRate: [number, number];
  activation: { apply(x: tf.Tensor): tf.Tensor };
}

const StockConv2D = tf.layers.conv2d({ filters: 1, kernelSize: 1 }).constructor as new (args: ConvArgs) => tf.layers.Layer;

export class Conv2DLayerError extends Error {
  override name = 'Conv2DLayerError';
}

export class Conv2D extends StockConv2D {
  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    const state = this as unknown as ConvState;
    if (state.dataFormat !== 'channelsLast')
      throw new Conv2DLayerError(`layer '${this.name}': only channelsLast (NHWC) is supported, got ${state.dataFormat}`);
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const conv = tf.conv2d(x, state.kernel.read() as tf.Tensor4D, state.strides, state.padding, 'NHWC', state.dilationRate);
      return state.activation.apply(state.bias ? tf.add(conv, state.bias.read()) : conv);
    });
  }
}
tf.serialization.registerClass(Conv2D as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);
