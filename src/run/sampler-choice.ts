// sampler.json in a run directory: which latent sampler `medvae eval` found best (lowest Fréchet
// feature distance to the validation images; to the evaluated images when the data has no validation
// split) for one checkpoint's weights. sample and report use it by default for that step; for other
// steps the latent density's own preference stands.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LATENT_SAMPLERS, type LatentSampler } from '../models/latent-sampler.ts';
import { writeFileAtomic } from '../util/atomic.ts';

export const SAMPLER_CHOICE_FILE = 'sampler.json';

export interface SamplerChoice {
  format: 'medvae-sampler';
  version: 1;
  /** The optimizer step of the weights it was chosen for. */
  step: number;
  sampler: LatentSampler;
  /** The split the choice was made on: the validation split, or the evaluated one when the data has none (eval.json says why). */
  split: string;
  /** Fréchet feature distance to that split's images of each sampler measured (null: not available for this model or checkpoint). */
  frechet: Record<LatentSampler, number | null>;
}

export function writeSamplerChoice(runDir: string, choice: SamplerChoice): void {
  writeFileAtomic(join(runDir, SAMPLER_CHOICE_FILE), `${JSON.stringify(choice, null, 2)}\n`);
}

/** The run's sampler choice for `step`, undefined when there is none for it (or the file is not one). */
export function readSamplerChoice(runDir: string, step: number): SamplerChoice | undefined {
  const file = join(runDir, SAMPLER_CHOICE_FILE);
  if (!existsSync(file)) return undefined;
  try {
    const choice = JSON.parse(readFileSync(file, 'utf8')) as Partial<SamplerChoice>;
    if (choice.format !== 'medvae-sampler' || choice.step !== step || !LATENT_SAMPLERS.includes(choice.sampler!)) return undefined;
    return choice as SamplerChoice;
  } catch {
    return undefined;
  }
}

/** The lowest Fréchet feature distance among those measured (ties: the first of LATENT_SAMPLERS). */
export function bestByFrechet(frechet: Record<LatentSampler, number | null>): LatentSampler {
  return LATENT_SAMPLERS.reduce((a, b) => ((frechet[b] ?? Infinity) < (frechet[a] ?? Infinity) ? b : a));
}
