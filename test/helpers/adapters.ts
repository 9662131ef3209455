// WebGPU adapters as Dawn would describe them, for tests of adapter choice and memory budgets that
// need no GPU: a hardware NVIDIA one by default, a software one (vendor google, as SwiftShader)
// with `software: true`, 1 GiB limits unless given.
import type { AdapterDescription } from '../../src/backend/webgpu/adapters.ts';

export function fakeAdapter(fields: Partial<AdapterDescription> = {}): AdapterDescription {
  const software = fields.software ?? false;
  return {
    index: 0,
    backend: 'vulkan',
    name: software ? 'SwiftShader Device (Subzero)' : 'NVIDIA H100',
    vendor: software ? 'google' : 'nvidia',
    architecture: '',
    device: '',
    driver: '',
    software,
    limits: { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 30 },
    ...fields,
  };
}
