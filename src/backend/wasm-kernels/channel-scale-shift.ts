// MedvaeChannelScaleShift: y = u * a + k with a, k per channel, one pass (batch norm's forward).
import { CHANNEL_SCALE_SHIFT } from './kernel-names.ts';
import { at, rowsAndChannels, sameShape, simdKernel } from './simd-kernel.ts';

export const channelScaleShiftConfig = simdKernel(CHANNEL_SCALE_SHIFT, ['u', 'a', 'k'], (kernels, [u, a, k], backend) => {
  const [rows, channels] = rowsAndChannels(u);
  sameShape(CHANNEL_SCALE_SHIFT, [channels], { a, k });
  const y = backend.makeOutput([...u.shape], 'float32');
  // v and b are not read without withV
  kernels.channel_affine(at(u), 0, at(a), 0, at(k), at(y), rows, channels, 0);
  return y;
});
