// How a test's child process (`node -e` in the repository root) imports a module of src/: the
// compiled one in lib/ when that build is current, as bin/ chooses (bin/cli-entry.js), else the
// TypeScript through tsx, which costs the child about a second of CPU compiling the sources.
import { compiledIsCurrent } from '../../bin/cli-entry.js';

export interface SrcImport {
  /** Node's arguments for the child: tsx's loader, or none. */
  execArgv: string[];
  /** What the child's script imports, relative to the repository root. */
  specifier: string;
}

/** `module`: a path under src/ without its extension, e.g. 'backend/index'. */
export function srcImport(module: string): SrcImport {
  return compiledIsCurrent()
    ? { execArgv: [], specifier: `./lib/src/${module}.js` }
    : { execArgv: ['--import', 'tsx'], specifier: `./src/${module}.ts` };
}
