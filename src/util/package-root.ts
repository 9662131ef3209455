// Where the package's own files (bundled data, configs) are, wherever medvae runs from.
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RUNNING_FROM_SOURCE } from './module-path.ts';

/** The project's root: this file is src/util/package-root.ts, or lib/src/util/package-root.js compiled. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), ...(RUNNING_FROM_SOURCE ? ['..', '..'] : ['..', '..', '..']));

/** A relative path not found from the working directory may name the bundled copy under the package root. */
export function resolveBundledPath(path: string): string {
  if (isAbsolute(path) || existsSync(path)) return path;
  const bundled = join(PACKAGE_ROOT, path);
  return existsSync(bundled) ? bundled : path;
}
