// sharp (libvips), loaded at its first use: most processes never decode or encode an image (the
// workers that are not rank 0, npz datasets, evaluations without grids), and loading it costs each
// about 0.3 s of CPU.
import type { default as Sharp } from 'sharp';

let loaded: Promise<typeof Sharp> | undefined;

/** The sharp module's default export, imported once per process. */
export function loadSharp(): Promise<typeof Sharp> {
  loaded ??= import('sharp').then((m) => m.default);
  return loaded;
}
