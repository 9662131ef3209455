// MedvaeChannelSum: the per-channel sum over all rows of an NHWC activation, one pass (batch norm's
// mean, bias gradients through ./sum.ts).
import { CHANNEL_SUM } from './kernel-names.ts';
import { at, rowsAndChannels, simdKernel } from './simd-kernel.ts';

export const channelSumConfig = simdKernel(CHANNEL_SUM, ['x'], (kernels, [x], backend) => {
  const [rows, channels] = rowsAndChannels(x);
  const out = backend.makeOutput([channels], 'float32');
  kernels.channel_sum(at(x), rows, channels, at(out));
  return out;
});
