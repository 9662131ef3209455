// What the scripts that generate docs/ share: reading bench JSON lines, the commit they describe,
// and replacing a generated block of a page (the README, docs/) between its markers.
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

/** A bench script's output line, tagged with the bench that printed it. */
export interface BenchLine {
  bench: string;
  [key: string]: unknown;
}

/** The line bench/meta.ts prints first: commit, date and machine of a run. */
export interface BenchMeta extends BenchLine {
  commit: string;
  dirty?: boolean;
  date: string;
  machine: { os: string; cpus: number; cpu_model: string; memory_gb: number; node: string };
}

/** The machine of a run in one phrase, for a page's stamp. */
export function machinePhrase(meta: BenchMeta): string {
  return `${meta.machine.os}, ${meta.machine.cpus} × ${meta.machine.cpu_model}, ${meta.machine.memory_gb} GB, Node ${meta.machine.node}`;
}

export function gitCommit(): string {
  return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
}

/** Replaces `<!-- name:start -->` ... `<!-- name:end -->` in a file of the repository; false when the markers are missing. */
export function replaceBlock(path: string, name: string, lines: string[]): boolean {
  const file = join(ROOT, path);
  const text = readFileSync(file, 'utf8');
  const [start, end] = [`<!-- ${name}:start -->`, `<!-- ${name}:end -->`];
  if (!text.includes(start) || !text.includes(end)) return false;
  const block = [start, '', ...lines, '', end].join('\n');
  writeFileSync(file, text.slice(0, text.indexOf(start)) + block + text.slice(text.indexOf(end) + end.length));
  return true;
}

/** replaceBlock on the README. */
export function replaceReadmeBlock(name: string, lines: string[]): boolean {
  return replaceBlock('README.md', name, lines);
}
