// manifest.json: the last file written into a checkpoint, listing every other file with its size
// and SHA-256. A checkpoint whose manifest is present and matches is whole; one cut short by a crash,
// a full disk or a bad copy is named, file by file, instead of failing deep inside weight decoding.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';

export const MANIFEST_FILE = 'manifest.json';

interface ManifestEntry {
  size: number;
  sha256: string;
}

interface Manifest {
  version: 1;
  files: Record<string, ManifestEntry>;
}

/** A checkpoint that cannot be used: one missing, or one that does not hold what its record says. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** A checkpoint whose files do not match its manifest (or, without one, its own specs). */
export class CheckpointDamagedError extends Error {
  override name = 'CheckpointDamagedError';
  /** The file at fault. */
  readonly file: string;
  /** What is wrong with it, without the file's name. */
  readonly problem: string;
  /** True when the checkpoint lacks its manifest (still being written, or cut short) rather than holding a bad file. */
  readonly incomplete: boolean;
  constructor(file: string, problem: string, incomplete = false) {
    super(`${file}: ${problem}`);
    this.file = file;
    this.problem = problem;
    this.incomplete = incomplete;
  }
}

function filesBelow(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .filter((f) => f !== MANIFEST_FILE)
    .sort();
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Lists every file under `dir`; call once everything else is written. */
export function writeManifest(dir: string): void {
  const files: Record<string, ManifestEntry> = {};
  for (const f of filesBelow(dir)) files[f] = { size: statSync(join(dir, f)).size, sha256: sha256(join(dir, f)) };
  const manifest: Manifest = { version: 1, files };
  writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 1));
}

function readManifest(dir: string): Manifest {
  const file = join(dir, MANIFEST_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CheckpointDamagedError(file, `unreadable manifest (${(e as Error).message})`);
  }
  const m = parsed as Partial<Manifest> | null;
  if (!m || m.version !== 1 || typeof m.files !== 'object' || m.files === null) {
    throw new CheckpointDamagedError(file, 'not a version 1 checkpoint manifest');
  }
  return m as Manifest;
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1 };

/** Bytes a weights file must hold for its specs (model.json's weightsManifest, an optimizer's specs). */
function expectedBytes(specs: readonly { shape: number[]; dtype: string }[]): number {
  return specs.reduce((sum, s) => sum + (DTYPE_BYTES[s.dtype] ?? 4) * s.shape.reduce((a, b) => a * b, 1), 0);
}

function checkSize(file: string, expected: number): void {
  if (!existsSync(file)) throw new CheckpointDamagedError(file, 'missing');
  const size = statSync(file).size;
  if (size !== expected) throw new CheckpointDamagedError(file, `${size} bytes, its specs need ${expected}`);
}

function parseJson<T>(file: string): T {
  if (!existsSync(file)) throw new CheckpointDamagedError(file, 'missing');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new CheckpointDamagedError(file, `not valid JSON (${(e as Error).message})`);
  }
}

/** Checkpoints written before manifests: the weight files must at least be as long as their specs say. */
function checkWithoutManifest(dir: string): void {
  parseJson<object>(join(dir, 'state.json'));
  for (const f of filesBelow(dir)) {
    if (basename(f) === 'model.json') {
      const json = parseJson<{ weightsManifest?: { paths: string[]; weights: { shape: number[]; dtype: string }[] }[] }>(join(dir, f));
      const groups = json.weightsManifest ?? [];
      if (groups.length === 1 && groups[0]!.paths.length === 1)
        checkSize(join(dir, dirname(f), groups[0]!.paths[0]!), expectedBytes(groups[0]!.weights));
    } else if (/^optimizer-[^/]+\.json$/.test(f)) {
      const json = parseJson<{ specs?: { shape: number[]; dtype: string }[] }>(join(dir, f));
      checkSize(join(dir, f.replace(/\.json$/, '.bin')), expectedBytes(json.specs ?? []));
    }
  }
}

export function hasManifest(dir: string): boolean {
  return existsSync(join(dir, MANIFEST_FILE));
}

export interface VerifyOptions {
  /**
   * A checkpoint without manifest.json is incomplete rather than old: set when an older checkpoint
   * of the same run has one (a folder still being copied or written by another process, or cut short).
   */
  requireManifest?: boolean;
}

/** Throws CheckpointDamagedError naming the first file that does not match. */
export function verifyCheckpoint(dir: string, options: VerifyOptions = {}): void {
  if (!hasManifest(dir)) {
    if (options.requireManifest)
      throw new CheckpointDamagedError(
        join(dir, MANIFEST_FILE),
        'missing while an older checkpoint of the run has one: still being written, or cut short',
        true,
      );
    checkWithoutManifest(dir);
    return;
  }
  for (const [name, entry] of Object.entries(readManifest(dir).files)) {
    const file = join(dir, name);
    let size: number;
    let digest: string;
    try {
      size = statSync(file).size;
      digest = size === entry.size ? sha256(file) : '';
    } catch (e) {
      // Missing, or moved away while being read (another rank setting a damaged checkpoint aside).
      throw new CheckpointDamagedError(
        file,
        `unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}), listed in the manifest`,
      );
    }
    if (size !== entry.size) throw new CheckpointDamagedError(file, `${size} bytes, the manifest says ${entry.size}`);
    if (digest !== entry.sha256) throw new CheckpointDamagedError(file, 'SHA-256 differs from the manifest');
  }
}
