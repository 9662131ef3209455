// What the scripts that generate docs/ share: reading bench JSON lines, the commit they describe,
// and replacing a generated block of the README between its markers.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..');

/** The JSON objects of a file of bench output; lines that are not JSON objects (logs) are skipped. */
export function jsonLines<T>(file: string): T[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as T);
}

export function gitCommit(): string {
  return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
}

/** Replaces the README's `<!-- name:start -->` ... `<!-- name:end -->` block; false when the markers are missing. */
export function replaceReadmeBlock(name: string, lines: string[]): boolean {
  const file = join(ROOT, 'README.md');
  const readme = readFileSync(file, 'utf8');
  const [start, end] = [`<!-- ${name}:start -->`, `<!-- ${name}:end -->`];
  if (!readme.includes(start) || !readme.includes(end)) return false;
  const block = [start, '', ...lines, '', end].join('\n');
  writeFileSync(file, readme.slice(0, readme.indexOf(start)) + block + readme.slice(readme.indexOf(end) + end.length));
  return true;
}
