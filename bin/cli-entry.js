// Starts one of the commands: the compiled JavaScript in lib/ (what `npm run build` writes and an
// installed package ships), or, in a checkout whose sources are newer than that build, the
// TypeScript sources through tsx, so that an edit takes effect without a rebuild.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('..', import.meta.url);

/** Newest modification time of any file under the given folders (0 when none exists). */
function newestSource(folders) {
  let newest = 0;
  for (const folder of folders) {
    const path = fileURLToPath(new URL(folder, root));
    if (!existsSync(path)) continue;
    for (const entry of readdirSync(path, { withFileTypes: true, recursive: true })) {
      if (entry.isFile()) newest = Math.max(newest, statSync(`${entry.parentPath}/${entry.name}`).mtimeMs);
    }
  }
  return newest;
}

/**
 * True when `compiled` (a file of lib/) exists and was written after every change to src/ and
 * workers/: an installed package (no sources) or a checkout built since its last edit.
 */
export function compiledIsCurrent(compiled = new URL('lib/src/index.js', root)) {
  return existsSync(compiled) && newestSource(['src/', 'workers/']) <= statSync(compiled).mtimeMs;
}

/** `name` is a file of src/cli without extension, e.g. 'medvae'. */
export async function runCli(name) {
  const compiled = new URL(`lib/src/cli/${name}.js`, root);
  if (compiledIsCurrent(compiled)) {
    await import(compiled.href);
    return;
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL(`src/cli/${name}.ts`, root).href);
}
