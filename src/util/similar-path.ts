// What to say about a path that does not exist: the nearest folder that does, and names in it close
// to the one asked for (a typo: retinamnst.npz for retinamnist.npz, or a missing extension).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join } from 'node:path';
import { PACKAGE_ROOT } from './package-root.ts';

/** Edits (insert, delete, substitute, swap two neighbours) turning a into b. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

const stem = (name: string): string => name.slice(0, name.length - extname(name).length).toLowerCase();

/** Whether `candidate` looks like a mistyped `wanted`: same name but for case or extension, or a few edits apart. */
function looksLike(wanted: string, candidate: string): boolean {
  if (candidate === wanted) return false;
  if (stem(candidate) === stem(wanted)) return true;
  const a = wanted.toLowerCase();
  const b = candidate.toLowerCase();
  return editDistance(a, b) <= Math.max(1, Math.min(3, Math.floor(a.length / 5)));
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Paths beside `path` (same folder, spelt as the user spelt the folder) whose names look like a
 * typo of its name, closest first; at most `limit`. A relative folder missing from the working
 * directory is looked up under the package root too, as bundled paths are.
 */
export function similarPaths(path: string, limit = 2): string[] {
  const folder = dirname(path);
  const where = isDir(folder) ? folder : !isAbsolute(path) && isDir(join(PACKAGE_ROOT, folder)) ? join(PACKAGE_ROOT, folder) : undefined;
  if (!where) return [];
  const wanted = basename(path);
  let names: string[];
  try {
    names = readdirSync(where);
  } catch {
    return [];
  }
  const distance = (n: string): number => editDistance(wanted.toLowerCase(), n.toLowerCase());
  return names
    .filter((n) => !n.startsWith('.') && looksLike(wanted, n))
    .sort((x, y) => distance(x) - distance(y) || x.localeCompare(y))
    .slice(0, limit)
    .map((n) => (folder === '.' ? (path.startsWith('./') ? `./${n}` : n) : join(folder, n)));
}

/** The nearest folder above `path` that exists, when its own folder does not (undefined otherwise). */
export function missingFolder(path: string): { missing: string; nearest: string } | undefined {
  let missing = dirname(path);
  if (existsSync(missing) || (!isAbsolute(path) && existsSync(join(PACKAGE_ROOT, missing)))) return undefined;
  let nearest = dirname(missing);
  while (!existsSync(nearest) && dirname(nearest) !== nearest) {
    missing = nearest;
    nearest = dirname(nearest);
  }
  return { missing, nearest };
}

/** "check the path" advice for a path that does not exist: a near name beside it, or the first folder on the way that is missing. */
export function checkPathAdvice(path: string): string {
  const near = similarPaths(path);
  if (near.length > 0) return `did you mean ${near.join(' or ')}?`;
  const gap = missingFolder(path);
  if (gap) return `check the path: the folder ${gap.missing} does not exist either`;
  return 'check the path';
}
