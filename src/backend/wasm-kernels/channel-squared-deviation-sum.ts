// MedvaeChannelSquaredDeviationSum: per channel, the sum of (x - center)^2 over all rows in one
// pass (batch norm's variance).
import { CHANNEL_SQUARED_DEVIATION_SUM } from './kernel-names.ts';
import { at, rowsAndChannels, sameShape, simdKernel } from './simd-kernel.ts';

export const channelSquaredDeviationSumConfig = simdKernel(
  CHANNEL_SQUARED_DEVIATION_SUM,
  ['x', 'center'],
  (kernels, [x, center], backend) => {
    const [rows, channels] = rowsAndChannels(x);
    sameShape(CHANNEL_SQUARED_DEVIATION_SUM, [channels], { center });
    const out = backend.makeOutput([channels], 'float32');
    kernels.channel_squared_deviation_sum(at(x), at(center), rows, channels, at(out));
    return out;
  },
);
