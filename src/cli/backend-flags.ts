// The backend flags every command that computes takes: one definition, so `--backend webgpu
// --allow-software-gpu` means the same to `train`, `sample`, `eval` and the restoration commands.
import { Option } from 'commander';
import { BACKEND_CHOICES, type BackendChoice } from '../config/schema.ts';
import type { BackendOptions } from '../backend/index.ts';

export interface BackendFlags {
  backend?: string;
  allowSoftwareGpu?: boolean;
}

export function backendOption(description = 'compute backend'): Option {
  return new Option('--backend <name>', description).choices([...BACKEND_CHOICES]);
}

export function allowSoftwareGpuOption(): Option {
  return new Option(
    '--allow-software-gpu',
    'let --backend webgpu run on a software adapter such as SwiftShader (tests; far slower than native)',
  );
}

/** The choice and options for initBackend from a command's flags; `fallback` when --backend is absent. */
export function backendFromFlags(
  flags: BackendFlags,
  fallback: BackendChoice = 'auto',
): { choice: BackendChoice; options: BackendOptions } {
  return {
    choice: (flags.backend as BackendChoice | undefined) ?? fallback,
    options: { allowSoftwareGpu: flags.allowSoftwareGpu === true },
  };
}
