// UpSampling2D whose nearest-neighbour gradient is right on every backend.
//
// tfjs-layers' UpSampling2D runs tf.image.resizeNearestNeighbor, and TF.js 4.22's wasm kernel of
// its gradient (ResizeNearestNeighborGrad, which the native backend runs too) is wrong for a batch
// of more than one image: on a 2x4x4x1 input it is off by more than the values themselves
// (test/unit/models.test.ts). For an integer factor, each input pixel's gradient is the sum
// of the output gradients over the block of pixels it was copied to: an average pool times the
// block's size, which every backend runs correctly and fast (a concat-and-reshape form of the copy
// ran 2.5 times slower on wasm). Same class name, config and (no) weights as the stock layer, so
// checkpoints are standard Keras UpSampling2D layers; registering it makes this process load them
// into this class.
import { tf } from '../util/tf.ts';

type Kwargs = Parameters<tf.layers.Layer['call']>[1];
type UpSamplingArgs = Parameters<typeof tf.layers.upSampling2d>[0];

/** What call() reads of the stock layer's state (fields of tfjs-layers' UpSampling2D). */
interface UpSamplingState {
  size: [number, number];
  dataFormat: 'channelsLast' | 'channelsFirst';
  interpolation: 'nearest' | 'bilinear';
}

const StockUpSampling2D = tf.layers.upSampling2d({}).constructor as new (args: UpSamplingArgs) => tf.layers.Layer;

/** Each pixel of an NHWC batch repeated `rows` times down and `columns` times across. */
export function repeatPixels(x: tf.Tensor4D, rows: number, columns: number): tf.Tensor4D {
  // customGrad hands its function the inputs and a save function in one list; the one input is first.
  const repeat = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor4D;
    const [, h, w] = input.shape;
    return {
      value: tf.image.resizeNearestNeighbor(input, [h * rows, w * columns]),
      gradFunc: (dy: tf.Tensor) => tf.mul(tf.avgPool(dy as tf.Tensor4D, [rows, columns], [rows, columns], 'valid'), rows * columns),
    };
  });
  return repeat(x) as tf.Tensor4D;
}

export class UpSampling2D extends StockUpSampling2D {
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const { size, dataFormat, interpolation } = this as unknown as UpSamplingState;
    // Bilinear, channels-first or fractional sizes: the stock layer's own path.
    if (interpolation !== 'nearest' || dataFormat !== 'channelsLast' || !size.every(Number.isInteger)) return super.call(inputs, kwargs);
    return repeatPixels((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D, size[0], size[1]);
  }
}
tf.serialization.registerClass(UpSampling2D as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);
