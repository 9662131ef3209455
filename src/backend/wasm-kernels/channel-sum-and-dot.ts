// MedvaeChannelSumAndDot: per channel, the sum of dy and the sum of dy * (x - center), both in one
// pass (batch norm's backward).
import { CHANNEL_SUM_AND_DOT } from './kernel-names.ts';
import { at, rowsAndChannels, sameShape, simdKernel } from './simd-kernel.ts';

export const channelSumAndDotConfig = simdKernel(CHANNEL_SUM_AND_DOT, ['dy', 'x', 'center'], (kernels, [dy, x, center], backend) => {
  const [rows, channels] = rowsAndChannels(x);
  sameShape(CHANNEL_SUM_AND_DOT, x.shape, { dy });
  sameShape(CHANNEL_SUM_AND_DOT, [channels], { center });
  const sums = backend.makeOutput([channels], 'float32');
  const dots = backend.makeOutput([channels], 'float32');
  kernels.channel_sum_and_dot(at(dy), at(x), at(center), rows, channels, at(sums), at(dots));
  return [sums, dots];
});
