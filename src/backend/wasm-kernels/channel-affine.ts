// MedvaeChannelAffine: y = u * a + v * b + k with a, b, k per channel, one pass (batch norm's
// backward input gradient).
import { CHANNEL_AFFINE } from './kernel-names.ts';
import { at, rowsAndChannels, sameShape, simdKernel } from './simd-kernel.ts';

export const channelAffineConfig = simdKernel(CHANNEL_AFFINE, ['u', 'v', 'a', 'b', 'k'], (kernels, [u, v, a, b, k], backend) => {
  const [rows, channels] = rowsAndChannels(u);
  sameShape(CHANNEL_AFFINE, u.shape, { v });
  sameShape(CHANNEL_AFFINE, [channels], { a, b, k });
  const y = backend.makeOutput([...u.shape], 'float32');
  kernels.channel_affine(at(u), at(v), at(a), at(b), at(k), at(y), rows, channels, 1);
  return y;
});
