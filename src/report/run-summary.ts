// Everything the report shows about one run, read from its directory: config.yaml as written,
// the newest sample and reconstruction grids, the loss series of metrics.jsonl, eval.json.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { readEvalFile, type EvalFile } from '../eval/eval-file.ts';
import { readMetricsLog, termSeries } from '../run/metrics-log.ts';
import { resolveRunPath } from '../run/run-checkpoint.ts';

export class ReportInputError extends Error {
  override name = 'ReportInputError';
}

export interface EpochImage {
  epoch: number;
  file: string;
  png: Buffer;
}

export interface RunSummary {
  name: string;
  dir: string;
  /** config.yaml verbatim, and the fields the report names. */
  configText: string;
  model: string;
  dataset: string;
  samples?: EpochImage;
  reconstructions?: EpochImage;
  /** Loss term -> (step, value) points of every logged step. */
  series: Map<string, [number, number][]>;
  /** Loss term -> (last step of the epoch, epoch mean) from the epoch records. */
  epochMeans: Map<string, [number, number][]>;
  /** The backend the training process logged, when metrics.jsonl says. */
  trainingBackend?: string;
  evaluation?: EvalFile;
}

/** The newest <dir>/epoch-NNNN.png. */
export function latestEpochImage(dir: string): EpochImage | undefined {
  if (!existsSync(dir)) return undefined;
  let best: { epoch: number; file: string } | undefined;
  for (const name of readdirSync(dir)) {
    const m = /^epoch-(\d+)\.png$/.exec(name);
    if (m && (!best || Number(m[1]) > best.epoch)) best = { epoch: Number(m[1]), file: join(dir, name) };
  }
  return best && { ...best, png: readFileSync(best.file) };
}

function field(doc: unknown, section: string, key: string): string {
  if (typeof doc !== 'object' || doc === null) return '?';
  const s = (doc as Record<string, unknown>)[section];
  if (typeof s !== 'object' || s === null) return '?';
  const v = (s as Record<string, unknown>)[key];
  return v === undefined ? '?' : String(v);
}

/** The summary of a run: its directory, or one of its checkpoint folders (the run's summary either way). */
export function readRunSummary(path: string): RunSummary {
  // Missing, a file, not a run: said the way every command that reads a run says it.
  const { runDir } = resolveRunPath(path);
  const configFile = join(runDir, 'config.yaml');
  const configText = readFileSync(configFile, 'utf8');
  let doc: unknown;
  try {
    doc = parseYaml(configText);
  } catch (e) {
    throw new ReportInputError(`${configFile}: not valid YAML (${(e as Error).message.split('\n')[0]})`);
  }
  const log = readMetricsLog(join(runDir, 'metrics.jsonl'));
  return {
    name: basename(resolve(runDir)),
    dir: runDir,
    configText,
    model: field(doc, 'model', 'name'),
    dataset: basename(field(doc, 'data', 'path')),
    samples: latestEpochImage(join(runDir, 'samples')),
    reconstructions: latestEpochImage(join(runDir, 'reconstructions')),
    series: termSeries(log, 'step'),
    epochMeans: termSeries(log, 'epoch'),
    trainingBackend: log.find((r) => r.kind === 'start')?.backend,
    evaluation: readEvalFile(runDir),
  };
}
