// Names and attributes of this project's own wasm kernels, as tfjs-core's kernel_names.ts lists
// TF.js's: the ops that run them (../channel-ops.ts, ../adam-update.ts, the conv kernels) import
// them from here, and each kernel lives in the file named after it (MedvaeChannelSum: channel-sum.ts).
// The prefix keeps them apart from any kernel TF.js may add under the same name.

export const LEAKY_RELU_GRAD = 'MedvaeLeakyReluGrad';
export const CHANNEL_SUM = 'MedvaeChannelSum';
export const CHANNEL_SQUARED_DEVIATION_SUM = 'MedvaeChannelSquaredDeviationSum';
export const CHANNEL_SUM_AND_DOT = 'MedvaeChannelSumAndDot';
export const CHANNEL_AFFINE = 'MedvaeChannelAffine';
export const CHANNEL_SCALE_SHIFT = 'MedvaeChannelScaleShift';
export const COL2IM = 'MedvaeCol2Im';
export const ADAM_UPDATE = 'MedvaeAdamUpdate';

/** The geometry col2im needs: the conv's input (dx) shape, its output size, filter size, strides, leading pads. */
export interface Col2ImAttrs {
  inputShape: [number, number, number, number];
  outHeight: number;
  outWidth: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padLeft: number;
}

/** Adam's hyper-parameters for one update, as ../adam-update.ts passes them. */
export interface AdamUpdateAttrs {
  weightDecay: number;
  beta1: number;
  beta2: number;
  stepSize: number;
  epsHat: number;
}
