// Which checkpoint of a run to use. Every command that reads a run (and `loadRun`, and
// `train --resume`) goes through here: a path is checked for what it is (missing, a file, a run, a
// checkpoint inside a run), and the newest checkpoint that proves intact against its manifest is
// taken, newer damaged or incomplete ones named in one line. A checkpoint asked for by name is used
// as it is or refused, never swapped for another. No TensorFlow here: `report` uses it too.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { CheckpointDamagedError, CheckpointError, hasManifest, verifyCheckpoint } from './checkpoint-manifest.ts';

/** A path given as a run that is not one: the message says what is wrong with it first. */
export class RunDirError extends Error {
  override name = 'RunDirError';
}

const STEP_DIR = /^step-(\d+)$/;
const RUN_HINT = 'a run directory holds config.yaml and checkpoints/';

/** Checkpoint directories under root, oldest first. */
export function listCheckpoints(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => STEP_DIR.test(d))
    .sort()
    .map((d) => join(root, d));
}

export function latestCheckpoint(root: string): string | undefined {
  return listCheckpoints(root).at(-1);
}

/** What a run path names: the run, and the checkpoint when the path is one of the run's checkpoint folders. */
export interface RunPath {
  runDir: string;
  checkpoint?: string;
}

/** A run directory, or a checkpoint folder inside one (runs/<name>/checkpoints/step-N, .../best). */
export function resolveRunPath(path: string): RunPath {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new RunDirError(
        `${path} does not exist; give a run directory (the one \`medvae train\` printed as 'run directory:') or one of its checkpoints (checkpoints/step-N inside it)`,
      );
    throw e;
  }
  if (!isDir) throw new RunDirError(`${path} is a file, expected a run directory (${RUN_HINT})`);
  if (existsSync(join(path, 'config.yaml'))) return { runDir: path };
  const parent = join(path, '..');
  const run = join(path, '..', '..');
  if (basename(resolve(parent)) === 'checkpoints' && existsSync(join(run, 'config.yaml'))) return { runDir: run, checkpoint: path };
  let hint = '';
  if (basename(resolve(path)) === 'checkpoints' && existsSync(join(parent, 'config.yaml'))) hint = `; its run directory is ${parent}`;
  else if (existsSync(join(path, 'state.json'))) hint = '; it holds a checkpoint, but not inside a run directory';
  throw new RunDirError(`${path} is not a run directory: no config.yaml (${RUN_HINT})${hint}`);
}

/** A checkpoint passed over: which, and what is wrong with it. */
export interface SkippedCheckpoint {
  dir: string;
  error: CheckpointDamagedError;
}

/**
 * Whether candidates[i] (newest first) must have a manifest: an older checkpoint of the run has one,
 * so this one was written since manifests exist. A run from before manifests (resumed since or not)
 * keeps its old checkpoints loadable, their sizes checked against their own specs.
 */
function manifestRequired(candidates: readonly string[], i: number): boolean {
  return candidates.slice(i + 1).some(hasManifest);
}

/**
 * The first of `candidates` (newest first) that verifies, or undefined. Each one that does not is
 * handed to `onSkip` with the one tried next. A candidate without a manifest counts as incomplete
 * (still being written, or cut short) when an older one has a manifest.
 */
export function newestIntactCheckpoint(
  candidates: readonly string[],
  onSkip: (skipped: SkippedCheckpoint, next: string | undefined) => void = () => undefined,
): string | undefined {
  for (const [i, dir] of candidates.entries()) {
    try {
      verifyCheckpoint(dir, { requireManifest: manifestRequired(candidates, i) });
      return dir;
    } catch (e) {
      if (!(e instanceof CheckpointDamagedError)) throw e;
      onSkip({ dir, error: e }, candidates[i + 1]);
    }
  }
  return undefined;
}

/** 'damaged' or 'incomplete', as the lines about a skipped checkpoint say it. */
export function skipKind(e: CheckpointDamagedError): string {
  return e.incomplete ? 'incomplete' : 'damaged';
}

/** The problem of a skipped checkpoint, its file named inside the checkpoint: "decoder/weights.bin: N bytes, the manifest says M". */
function problemOf({ dir, error }: SkippedCheckpoint): string {
  const file = relative(dir, error.file);
  const named = file && !file.startsWith('..') ? file : error.file;
  const legacy = !error.incomplete && !hasManifest(dir) ? '; no manifest (an older medvae wrote it), checked against its own specs' : '';
  return `${named}: ${error.problem}${legacy}`;
}

/** A trained run's checkpoint, chosen and verified. */
export interface RunCheckpoint {
  runDir: string;
  /** The checkpoint folder to load. */
  dir: string;
  /** True when the checkpoint was asked for by name or path: used as it is, never replaced by another. */
  named: boolean;
  /** Newer checkpoints passed over, damaged or incomplete (only when none was named). */
  skipped: SkippedCheckpoint[];
}

export interface SelectCheckpointOptions {
  /**
   * Which checkpoint: absent or 'latest' for the newest intact one; 'best'; 'step-N' or 'N';
   * another folder name under checkpoints/; or a checkpoint folder's path. A named one that is
   * damaged is an error.
   */
  checkpoint?: string;
  /** Where the one line about passed-over checkpoints goes; default: stderr. */
  log?: (line: string) => void;
}

function stderrLine(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** The step a checkpoint's state.json records, or undefined when it cannot be read. */
function savedStep(dir: string): number | undefined {
  try {
    const step = (JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { step?: unknown }).step;
    return typeof step === 'number' ? step : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every checkpoint of a run a reader may take, newest first: the step-N folders, and best (a copy
 * of one of them) after those of its step or newer, so an intact best can stand in for its damaged step-N.
 */
function runCandidates(root: string): string[] {
  const steps = listCheckpoints(root).reverse();
  const best = join(root, 'best');
  if (!existsSync(best)) return steps;
  const bestStep = savedStep(best);
  const older = bestStep === undefined ? -1 : steps.findIndex((d) => Number(STEP_DIR.exec(basename(d))![1]) < bestStep);
  return older < 0 ? [...steps, best] : [...steps.slice(0, older), best, ...steps.slice(older)];
}

/** A checkpoint as the fallback line names it: step-N, or best with its step. */
function shortName(dir: string): string {
  const step = basename(dir) === 'best' ? savedStep(dir) : undefined;
  return step === undefined ? basename(dir) : `best (step ${step})`;
}

/** The folders under checkpoints/ by name, for messages: what the run has. */
function existingNames(root: string): string {
  const names = existsSync(root)
    ? readdirSync(root, { withFileTypes: true })
        .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
        .map((e) => e.name)
        .sort()
    : [];
  return names.length > 0 ? `it has ${names.join(', ')}` : 'it has none yet';
}

/** The folder a checkpoint name stands for under root; an error naming what exists when there is none. */
function namedCheckpoint(root: string, name: string): string {
  const step = /^(?:step-)?(\d+)$/.exec(name);
  if (step) {
    const found = listCheckpoints(root).find((d) => Number(STEP_DIR.exec(basename(d))![1]) === Number(step[1]));
    if (found) return found;
  } else if (!name.includes('/') && !name.includes('\\') && name !== '.' && name !== '..') {
    if (existsSync(join(root, name))) return join(root, name);
  } else if (existsSync(name) && statSync(name).isDirectory()) {
    return name;
  }
  const shown = step ? `step-${step[1]!.padStart(7, '0')}` : name;
  throw new CheckpointError(`${root} has no checkpoint ${shown}; ${existingNames(root)}`);
}

/**
 * The checkpoint of a run to load. `path` is a run directory or one of its checkpoint folders
 * (which names that checkpoint). Without a name, the newest intact checkpoint is taken and newer
 * damaged or incomplete ones are reported in one line; with one, that checkpoint or an error.
 */
export function selectRunCheckpoint(path: string, options: SelectCheckpointOptions = {}): RunCheckpoint {
  const log = options.log ?? stderrLine;
  const { runDir, checkpoint: fromPath } = resolveRunPath(path);
  const root = join(runDir, 'checkpoints');
  let named = fromPath;
  if (options.checkpoint !== undefined && options.checkpoint !== 'latest') {
    const asked = namedCheckpoint(root, options.checkpoint);
    if (named && resolve(named) !== resolve(asked))
      throw new CheckpointError(
        `${path} is checkpoint ${basename(named)}, but checkpoint ${options.checkpoint} was asked for too: name one`,
      );
    named = asked;
  }
  const candidates = runCandidates(root);
  if (named) {
    try {
      const at = candidates.findIndex((d) => resolve(d) === resolve(named));
      verifyCheckpoint(named, { requireManifest: at >= 0 && manifestRequired(candidates, at) });
    } catch (e) {
      if (!(e instanceof CheckpointDamagedError)) throw e;
      const others = newestIntactCheckpoint(candidates.filter((d) => resolve(d) !== resolve(named)));
      const instead = others
        ? `; name another, or give the run directory alone to use the newest intact one (${shortName(others)})`
        : `; no other checkpoint of ${runDir} is intact either`;
      throw new CheckpointError(`${named} is ${skipKind(e)} (${problemOf({ dir: named, error: e })})${instead}`, { cause: e });
    }
    return { runDir, dir: named, named: true, skipped: [] };
  }
  if (candidates.length === 0)
    throw new CheckpointError(
      `${runDir} has no checkpoint yet (${root} holds none): training writes one at the end of every epoch (and every output.checkpoint_every_steps steps, when set)`,
    );
  const skipped: SkippedCheckpoint[] = [];
  const dir = newestIntactCheckpoint(candidates, (s) => skipped.push(s));
  const tried = skipped.map((s, i) => `${i === 0 ? s.dir : basename(s.dir)} is ${skipKind(s.error)} (${problemOf(s)})`).join(', ');
  if (!dir)
    throw new CheckpointError(
      `${runDir}: no intact checkpoint: ${tried}; copy an intact checkpoint back into ${root}, or train the run again (medvae train --config ${join(runDir, 'config.yaml')})`,
    );
  if (skipped.length > 0) log(`warning: ${tried}; using ${shortName(dir)}`);
  return { runDir, dir, named: false, skipped };
}
