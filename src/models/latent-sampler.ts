// The names of the latent samplers, apart from the densities themselves: this file loads no TF.js,
// so a command checks a --latent flag before the model code loads.

/** N(0, I), or the latent density's full-covariance Gaussian or mixture (./latent-density.ts). */
export type LatentSampler = 'prior' | 'gaussian' | 'mixture';
export const LATENT_SAMPLERS: readonly LatentSampler[] = ['prior', 'gaussian', 'mixture'];
export type FittedSampler = Exclude<LatentSampler, 'prior'>;

/** What `medvae sample --latent` takes: a sampler, `default` (run/sampler-choice.ts), or `fitted` (`gaussian`'s old name). */
export type LatentSource = LatentSampler | 'fitted' | 'default';
export const LATENT_SOURCES: readonly LatentSource[] = ['default', 'prior', 'gaussian', 'mixture', 'fitted'];
