// What a worker's environment says about its device. TensorFlow.js cannot place ops on a chosen
// device, so each worker process is given one: CUDA sees only GPU <id> (CUDA_VISIBLE_DEVICES), and
// the webgpu backend takes the <id>-th GPU of its stable enumeration (GPU_INDEX_ENV). A CPU worker
// hides every CUDA device.
import { GPU_INDEX_ENV } from '../backend/webgpu/discover.ts';

export function deviceEnv(device: string): Record<string, string> {
  const [kind, id] = device.split(':') as [string, string];
  if (kind === 'gpu') return { CUDA_VISIBLE_DEVICES: id, [GPU_INDEX_ENV]: id };
  return { CUDA_VISIBLE_DEVICES: '', [GPU_INDEX_ENV]: '' };
}
