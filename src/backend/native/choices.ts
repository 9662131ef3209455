// Which graph (or the wasm kernel) each kernel shape runs, as timed by the first call of that
// shape, remembered on disk per machine, thread count and onnxruntime version. A later process on
// the same machine (a resumed run, another worker, the next epoch's run) makes the same choices
// without timing anything, and so computes the same bits: a graph choice changes float rounding,
// and a timing can come out either way on a busy machine.
//
// The file is MEDVAE_NATIVE_CHOICES, or ~/.cache/medvae/native-graphs.json; MEDVAE_NATIVE_CHOICES=off
// keeps the choices in memory only.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, homedir } from 'node:os';
import { dirname, join } from 'node:path';

type Table = Record<string, Record<string, string>>;

let section: string | undefined;
let remembered: Record<string, string> | undefined;

function file(): string | undefined {
  const configured = process.env['MEDVAE_NATIVE_CHOICES'];
  if (configured === 'off') return undefined;
  return configured !== undefined && configured !== '' ? configured : join(homedir(), '.cache', 'medvae', 'native-graphs.json');
}

function readTable(path: string | undefined): Table {
  if (path === undefined) return {};
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Table) : {};
  } catch {
    return {};
  }
}

/**
 * The set of graphs the kernels offer, part of every section's name: raise it when a kernel gains
 * a graph, or the way they are timed changes, so that shapes timed before are timed again.
 */
export const GRAPH_SET = 9;

/** Starts (or restarts) the choices of this machine with `threads` threads and this onnxruntime version. */
export function openChoices(threads: number, ortVersion: string): void {
  section = `${cpus()[0]?.model ?? 'unknown cpu'}|${threads} threads|onnxruntime ${ortVersion}|graphs ${GRAPH_SET}`;
  remembered = { ...readTable(file())[section] };
}

/** The remembered choice for `key`, if any. */
export function recall(key: string): string | undefined {
  return remembered?.[key];
}

/** Remembers `label` for `key`, in memory and (merged with what other processes wrote) on disk. */
export function remember(key: string, label: string): void {
  if (remembered === undefined || section === undefined) return;
  remembered[key] = label;
  const path = file();
  if (path === undefined) return;
  try {
    const table = readTable(path);
    table[section] = { ...table[section], [key]: label };
    mkdirSync(dirname(path), { recursive: true });
    const temp = `${path}.${process.pid}.tmp`;
    writeFileSync(temp, `${JSON.stringify(table, null, 1)}\n`);
    renameSync(temp, path);
  } catch {
    // A read-only home or full disk costs only the timing of these shapes again next time.
  }
}
