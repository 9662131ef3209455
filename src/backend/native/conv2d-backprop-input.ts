// Conv2DBackpropInput on native: the gradient of an NHWC conv with respect to its input (and so
// the forward pass of every conv2dTranspose) as ONNX's ConvTranspose, between Transposes to and
// from NCHW. The forward conv's bottom and right padding become ConvTranspose's pads, or, where the
// forward conv left the last rows unread, output_padding (those rows of dx are zero).
import * as tf from '@tensorflow/tfjs';
import { bottomPad, geometryKey, nhwcInfo, rightPad } from './conv-geometry.ts';
import { nativeKernel, type NativePlan } from './native-kernel.ts';
import type { Candidate } from './sessions.ts';

/** The graph of dx from the NHWC `dy` and the HWIO `filter` of the forward conv `info`. */
export function backpropInputCandidates(info: tf.backend_util.Conv2DInfo, dy: string, filter: string, dx: string): Candidate[] {
  const bottom = bottomPad(info);
  const right = rightPad(info);
  return [
    {
      label: 'conv-transpose',
      graph: {
        inputs: [
          { name: dy, shape: [info.batchSize, info.outHeight, info.outWidth, info.outChannels] },
          { name: filter, shape: [info.filterHeight, info.filterWidth, info.inChannels, info.outChannels] },
        ],
        outputs: [{ name: dx, shape: [info.batchSize, info.inHeight, info.inWidth, info.inChannels] }],
        nodes: [
          { op: 'Transpose', inputs: [dy], outputs: ['dy_nchw'], attrs: { perm: [0, 3, 1, 2] } },
          // ConvTranspose's weight is [C_in, C_out, kh, kw] with C_in the channels it reads (Co of the forward conv).
          { op: 'Transpose', inputs: [filter], outputs: ['w_iohw'], attrs: { perm: [3, 2, 0, 1] } },
          {
            op: 'ConvTranspose', inputs: ['dy_nchw', 'w_iohw'], outputs: ['dx_nchw'],
            attrs: {
              kernel_shape: [info.filterHeight, info.filterWidth],
              strides: [info.strideHeight, info.strideWidth],
              dilations: [info.dilationHeight, info.dilationWidth],
              pads: [info.padInfo.top, info.padInfo.left, Math.max(0, bottom), Math.max(0, right)],
              output_padding: [Math.max(0, -bottom), Math.max(0, -right)],
            },
          },
          { op: 'Transpose', inputs: ['dx_nchw'], outputs: [dx], attrs: { perm: [0, 2, 3, 1] } },
        ],
      },
    },
  ];
}

function plan(inputs: Record<string, tf.TensorInfo>, attrs: tf.Conv2DBackpropInputAttrs): NativePlan | undefined {
  const { filter } = inputs as { filter: tf.TensorInfo };
  const info = nhwcInfo(attrs.inputShape, filter.shape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, attrs.dataFormat);
  if (info === undefined) return undefined;
  return {
    key: geometryKey(info),
    outputShape: [info.batchSize, info.inHeight, info.inWidth, info.inChannels],
    candidates: () => backpropInputCandidates(info, 'dy', 'filter', 'dx'),
  };
}

export const conv2dBackpropInputConfig = nativeKernel(tf.Conv2DBackpropInput, ['dy', 'filter'], plan);
