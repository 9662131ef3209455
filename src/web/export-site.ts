// `medvae export-web`: a trained run as a folder of static files that explores the model in a
// browser (page/ is what runs there). The exporter computes what the page cannot, because it needs
// the training data: the decoder sigma (validation images) and the training images' -ELBO and
// reconstruction error, the reference the page's anomaly score is a percentile of. No image of the
// dataset goes into the site, only those numbers. The folder is written whole into a temporary
// sibling and renamed into place; it only ever replaces an earlier export.
import { tf } from '../util/tf.ts';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { LoadedRun } from '../run/checkpoint.ts';
import { readEvalFile, metricRows } from '../eval/eval-file.ts';
import { fitDecoderSigma } from '../restore/sigma.ts';
import { scoreImages } from '../restore/score.ts';
import { readImages, selectImages, sigmaImages } from '../restore/run-data.ts';
import { requireEncoder } from '../restore/samplers.ts';
import { writeDirAtomic } from '../util/atomic.ts';
import { explorerScript } from './bundle-page.ts';
import { modelDataScript, pageHtml } from './page-html.ts';
import {
  SITE_FILES,
  SITE_FORMAT,
  SITE_VERSION,
  type NetworkWeights,
  type SiteBundle,
  type SiteData,
  type SiteSampling,
} from './site-data.ts';
import { defaultSampler } from '../generate/sample.ts';
import { LATENT_DENSITY_FILE, LATENT_SAMPLERS, latentDensityToJson, type LatentDensity } from '../models/latent-density.ts';

/** Iterations of the page's imputation chains: a few seconds on a laptop GPU; `medvae impute` runs more. */
const PAGE_IMPUTE_ITERATIONS = 10;
const PAGE_IMPUTE_CHAINS = 4;
/** `medvae impute --iters` default, quoted on the page. */
const CLI_IMPUTE_ITERATIONS = 20;

/** --out names something the exporter must not touch. */
export class ExportTargetError extends Error {
  override name = 'ExportTargetError';
}

export interface ExportOptions {
  out: string;
  /** Training images scored for the anomaly score's reference distribution. */
  reference: number;
  seed: number;
  batch: number;
  log: (line: string) => void;
}

export interface ExportResult {
  out: string;
  /** Bytes of the page and its script (what loads besides the weights), and of everything. */
  pageBytes: number;
  totalBytes: number;
}

/** Refuses an --out that exists and is not an earlier export (or an empty folder): user files are never overwritten. */
export function checkExportTarget(out: string): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new ExportTargetError(`--out ${out} is a file; give a new folder for the site`);
  if (readdirSync(out).length === 0) return;
  const metadata = join(out, SITE_FILES.metadata);
  let format: unknown;
  try {
    format = (JSON.parse(readFileSync(metadata, 'utf8')) as { format?: unknown }).format;
  } catch {
    format = undefined;
  }
  if (format !== SITE_FORMAT)
    throw new ExportTargetError(
      `--out ${out} exists and is not an earlier medvae export-web site (no ${SITE_FILES.metadata} of one); give a new folder, nothing was written`,
    );
}

/**
 * Where the page samples from: the checkpoint's latent density (null for a checkpoint that predates
 * them: the prior only) and the sampler `medvae sample` uses by default (`defaultSampler`), which
 * the page starts with.
 */
export function siteDensity(run: LoadedRun): { sampling: SiteSampling; density: LatentDensity | null } {
  const { sampler, basis, split } = defaultSampler(run);
  const density = run.latentDensity ?? null;
  const samplers = density ? [...LATENT_SAMPLERS] : ['prior' as const];
  return { sampling: { sampler, basis, ...(split === undefined ? {} : { split }), samplers }, density };
}

/** A network's weights as TF.js writes them: specs and bytes (model.json + weights.bin beside). */
export async function networkArtifacts(
  net: tf.LayersModel,
): Promise<{ modelJson: tf.io.ModelJSON; weights: Uint8Array; specs: NetworkWeights['specs'] }> {
  let saved: tf.io.ModelArtifacts | undefined;
  await net.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  if (!saved) throw new Error(`network ${net.name} saved nothing`);
  const data = saved.weightData ?? new ArrayBuffer(0);
  const weights = new Uint8Array(Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data);
  const specs = (saved.weightSpecs ?? []).map((s) => ({ name: s.name, shape: s.shape, dtype: s.dtype }));
  const modelJson: tf.io.ModelJSON = {
    modelTopology: saved.modelTopology as object,
    format: saved.format ?? 'layers-model',
    generatedBy: saved.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version_layers}`,
    convertedBy: null,
    weightsManifest: [{ paths: ['weights.bin'], weights: saved.weightSpecs ?? [] }],
  };
  return { modelJson, weights, specs };
}

/** The training split's facts for the card, and -ELBO and reconstruction MSE of `n` of its images (seeded subset), each sorted: the page's reference. */
async function trainingReference(
  run: LoadedRun,
  sigma: number,
  opts: ExportOptions,
): Promise<{ reference: SiteData['reference']; length: number; classNames: string[] }> {
  const { config, model } = run;
  const { split, indices } = await selectImages(config, { split: config.data.split, n: opts.reference, seed: opts.seed });
  try {
    const images = await readImages(config, split, indices);
    opts.log(`scoring ${images.n} images of ${split.description}: the reference of the page's anomaly score`);
    const scores = await scoreImages(model, images, { sigma, samples: 1, seed: opts.seed, batch: opts.batch });
    const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
    return {
      reference: {
        description: basename(split.description),
        negElbo: sorted(scores.neg_elbo),
        reconMse: sorted(scores.recon_mse),
        seed: opts.seed,
      },
      length: split.length,
      classNames: split.labelNames,
    };
  } finally {
    await split.close();
  }
}

export async function exportWebSite(run: LoadedRun, opts: ExportOptions): Promise<ExportResult> {
  checkExportTarget(opts.out);
  const { config, model, state } = run;
  requireEncoder(model);
  const { images: sigmaSet, description: sigmaOn } = await sigmaImages(config, opts.seed);
  const sigma = await fitDecoderSigma(model, sigmaSet, opts.seed, opts.batch);
  opts.log(`decoder sigma ${sigma.toPrecision(4)} ([-1, 1] units), fitted on ${sigmaSet.n} images of ${sigmaOn}`);
  const { reference, ...training } = await trainingReference(run, sigma, opts);
  const evalFile = readEvalFile(run.runDir);
  const { labelWidth } = model;
  const { sampling, density } = siteDensity(run);
  opts.log(
    `samples: ${sampling.sampler} by default (as medvae sample)${density ? '; the page offers prior, gaussian and mixture' : '; the checkpoint has no latent density (it predates them): the prior only'}`,
  );
  const site: SiteData = {
    format: SITE_FORMAT,
    version: SITE_VERSION,
    model: config.model,
    seed: config.train.seed,
    labelWidth,
    classNames: labelWidth > 0 ? training.classNames : [],
    resize: config.data.resize,
    sampling,
    decoderSigma: sigma,
    sigmaFittedOn: `${sigmaSet.n} images of ${basename(sigmaOn)}`,
    reference,
    imputation: { method: 'mwg', iterations: PAGE_IMPUTE_ITERATIONS, chains: PAGE_IMPUTE_CHAINS, cliIterations: CLI_IMPUTE_ITERATIONS },
    card: {
      run: basename(run.runDir),
      checkpoint: basename(run.checkpoint),
      dataset: basename(reference.description),
      trainingImages: training.length,
      trainingSteps: state.step,
      parameters: model.paramCount(),
      exportedAt: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
      evaluation: evalFile ? { split: evalFile.split, n: evalFile.n, rows: metricRows(evalFile.metrics) } : null,
    },
  };
  const encoder = await networkArtifacts(model.networks['encoder']!);
  const decoder = await networkArtifacts(model.networks['decoder']!);
  const bundle: SiteBundle = {
    ...site,
    density,
    weights: {
      encoder: { specs: encoder.specs, base64: Buffer.from(encoder.weights).toString('base64') },
      decoder: { specs: decoder.specs, base64: Buffer.from(decoder.weights).toString('base64') },
    },
  };
  const script = await explorerScript();
  const html = pageHtml(site);
  await writeDirAtomic(opts.out, async (dir) => {
    for (const [name, net] of [
      ['encoder', encoder],
      ['decoder', decoder],
    ] as const) {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, 'model.json'), JSON.stringify(net.modelJson));
      writeFileSync(join(dir, name, 'weights.bin'), net.weights);
    }
    writeFileSync(join(dir, SITE_FILES.metadata), `${JSON.stringify(site, null, 2)}\n`);
    if (density) writeFileSync(join(dir, LATENT_DENSITY_FILE), latentDensityToJson(density));
    writeFileSync(join(dir, SITE_FILES.modelData), modelDataScript(JSON.stringify(bundle)));
    writeFileSync(join(dir, SITE_FILES.script), script);
    writeFileSync(join(dir, SITE_FILES.page), html);
  });
  const sizeOf = (file: string): number => statSync(join(opts.out, file)).size;
  const pageBytes = sizeOf(SITE_FILES.page) + sizeOf(SITE_FILES.script);
  const totalBytes = readdirSync(opts.out, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((sum, e) => sum + statSync(join(e.parentPath, e.name)).size, 0);
  return { out: opts.out, pageBytes, totalBytes };
}
