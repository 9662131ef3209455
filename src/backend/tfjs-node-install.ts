// Whether one of TF.js's native packages (tfjs-node, tfjs-node-gpu) is installed in a state that can
// load. The package can be present without its native binding, when its install script (which
// downloads libtensorflow) was skipped or failed offline: importing it then fails half-way, after
// registering its kernels, so the state is read from the files instead.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export type NativePackageState = 'absent' | 'no-binding' | 'installed';

/** `from`: where resolution starts (this module; tests point it elsewhere). */
export function nativePackageState(
  pkg: '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu',
  from: string = import.meta.url,
): NativePackageState {
  let root: string;
  try {
    root = dirname(createRequire(from).resolve(`${pkg}/package.json`));
  } catch {
    return 'absent';
  }
  const lib = join(root, 'lib');
  const bound =
    existsSync(lib) &&
    readdirSync(lib, { withFileTypes: true }).some(
      (e) => e.isDirectory() && e.name.startsWith('napi-v') && existsSync(join(lib, e.name, 'tfjs_binding.node')),
    );
  return bound ? 'installed' : 'no-binding';
}

/** Why a native package cannot be the backend, or undefined when it is installed. `short`: its name in messages. */
export function unavailableReason(
  pkg: '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu',
  short: string,
  state = nativePackageState(pkg),
): string | undefined {
  if (state === 'absent') return `${short} not installed`;
  if (state === 'no-binding')
    return `${short} installed without its native binding (its install script did not run or failed; \`npm rebuild ${pkg}\` retries it)`;
  return undefined;
}
