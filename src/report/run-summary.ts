// Everything the report shows about one run, read from its directory: config.yaml as written,
// the newest sample and reconstruction grids, the loss series of metrics.jsonl, eval.json.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { readEvalFile, type EvalFile } from '../eval/eval-file.ts';
import { lossSeries } from '../train/pictures.ts';

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

interface EpochLine {
  kind?: string;
  step?: number;
  means?: Record<string, number>;
}

function epochMeanSeries(metricsFile: string): Map<string, [number, number][]> {
  const series = new Map<string, [number, number][]>();
  if (!existsSync(metricsFile)) return series;
  for (const line of readFileSync(metricsFile, 'utf8').split('\n')) {
    if (!line.includes('"epoch"') || !line.includes('"means"')) continue;
    let rec: EpochLine;
    try {
      rec = JSON.parse(line) as EpochLine;
    } catch {
      continue; // a line still being written by a running trainer
    }
    if (rec.kind !== 'epoch' || typeof rec.step !== 'number' || !rec.means) continue;
    for (const [name, v] of Object.entries(rec.means)) {
      const points = series.get(name) ?? [];
      points.push([rec.step, v]);
      series.set(name, points);
    }
  }
  return series;
}

function firstBackend(metricsFile: string): string | undefined {
  if (!existsSync(metricsFile)) return undefined;
  for (const line of readFileSync(metricsFile, 'utf8').split('\n')) {
    const m = /"backend"\s*:\s*"([^"]*)"/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

function field(doc: unknown, section: string, key: string): string {
  if (typeof doc !== 'object' || doc === null) return '?';
  const s = (doc as Record<string, unknown>)[section];
  if (typeof s !== 'object' || s === null) return '?';
  const v = (s as Record<string, unknown>)[key];
  return v === undefined ? '?' : String(v);
}

export function readRunSummary(runDir: string): RunSummary {
  const configFile = join(runDir, 'config.yaml');
  if (!existsSync(configFile)) throw new ReportInputError(`${runDir}: not a run directory (no config.yaml)`);
  const configText = readFileSync(configFile, 'utf8');
  let doc: unknown;
  try {
    doc = parseYaml(configText);
  } catch (e) {
    throw new ReportInputError(`${configFile}: not valid YAML (${(e as Error).message.split('\n')[0]})`);
  }
  const metricsFile = join(runDir, 'metrics.jsonl');
  return {
    name: basename(resolve(runDir)),
    dir: runDir,
    configText,
    model: field(doc, 'model', 'name'),
    dataset: basename(field(doc, 'data', 'path')),
    samples: latestEpochImage(join(runDir, 'samples')),
    reconstructions: latestEpochImage(join(runDir, 'reconstructions')),
    series: lossSeries(metricsFile),
    epochMeans: epochMeanSeries(metricsFile),
    trainingBackend: firstBackend(metricsFile),
    evaluation: readEvalFile(runDir),
  };
}
