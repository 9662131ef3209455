// The package runs either from its TypeScript sources (a checkout, through tsx) or from the
// JavaScript that `npm run build` compiles into lib/ (an installed package). Code that starts
// another process or thread on one of its own modules must name that module's file as it exists
// in the form that is running.

/** True when this code runs from src/ through tsx, false when it runs compiled from lib/. */
export const RUNNING_FROM_SOURCE = import.meta.url.endsWith('.ts');

/** `relative` (a path to a .ts module, as written in the sources) resolved against `base`, as the running form's file. */
export function ownModule(relative: string, base: string): URL {
  const url = new URL(relative, base);
  return RUNNING_FROM_SOURCE ? url : new URL(url.href.replace(/\.ts$/, '.js'));
}

/** Node flags a child process needs to run `ownModule` files: the tsx loader when running from source. */
export const CHILD_EXEC_ARGV: readonly string[] = RUNNING_FROM_SOURCE ? ['--import', 'tsx'] : [];
