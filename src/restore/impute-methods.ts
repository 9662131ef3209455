// The imputation chains by name (samplers.ts runs them), in a module that loads nothing: `medvae
// impute --help` lists them without TF.js.
export const IMPUTE_METHODS = ['pseudo-gibbs', 'mwg'] as const;
export type ImputeMethod = (typeof IMPUTE_METHODS)[number];
