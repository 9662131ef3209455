// The page's behaviour: index.html (written by ../page-html.ts) holds the text and the model card;
// this script starts a backend, builds the model and wires the four tools to it. Every picture the
// model makes is drawn with a "SYNTHETIC" band burned into its pixels, so no copy of it can pass for
// a real image. Each section's data-state says what it is doing (working, done, error): the tests
// and the bench wait on it.
import { denormalize } from '../../run/pixels.ts';
import { BACKEND_LABELS, BACKEND_ORDER, type BackendName } from './backend-names.ts';
import { startBackend, webglIsSoftware } from './backends.ts';
import { buildModel, Explorer } from './explorer.ts';
import { MODEL_DATA_GLOBAL, quantileOf, samplerLine, type SiteBundle } from '../site-data.ts';
import type { LatentSampler } from '../../models/latent-density.ts';

const GRID_SIZE = 16;
const STRIP_STEPS = 8;
/** Band height in screen pixels under each picture, holding its "SYNTHETIC" / "YOUR IMAGE" mark. */
const BAND = 14;

type Mark = 'synthetic' | 'yours';

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}: index.html and explorer.js are from different exports`);
  return element as T;
}

function setState(section: HTMLElement, state: 'working' | 'done' | 'error', message?: string): void {
  section.dataset.state = state;
  const status = section.querySelector<HTMLElement>('.status');
  if (status) status.textContent = message ?? (state === 'working' ? 'Working…' : '');
}

/** Runs `task` with the section marked busy, and says so on the page when it fails. */
async function inSection(section: HTMLElement, task: () => Promise<void>): Promise<void> {
  setState(section, 'working');
  try {
    await task();
    setState(section, 'done');
  } catch (e) {
    setState(section, 'error', `Something went wrong: ${(e as Error).message}`);
    throw e;
  }
}

/** Screen pixels per image pixel: pictures show at about 96 px, always an integer zoom so pixels stay exact. */
function zoomFor(size: number): number {
  return Math.max(1, Math.round(96 / size));
}

/** One image ([-1, 1], HWC) as a canvas, zoomed without smoothing, with its mark burned in below. */
function pictureCanvas(pixels: Float32Array, size: number, channels: number, mark: Mark, caption: string): HTMLCanvasElement {
  const zoom = zoomFor(size);
  const canvas = document.createElement('canvas');
  canvas.width = size * zoom;
  canvas.height = size * zoom + BAND;
  canvas.className = `picture ${mark}`;
  canvas.dataset.size = String(size);
  canvas.dataset.zoom = String(zoom);
  canvas.title = `${mark === 'synthetic' ? 'SYNTHETIC: made by the model' : 'Your image as the model sees it'}. ${caption}`;
  const context = canvas.getContext('2d');
  if (!context) throw new Error('this browser cannot draw on a canvas');
  const native = context.createImageData(size, size);
  for (let p = 0; p < size * size; p++) {
    for (let c = 0; c < 3; c++) native.data[p * 4 + c] = denormalize(pixels[p * channels + (channels === 1 ? 0 : c)]!);
    native.data[p * 4 + 3] = 255;
  }
  const scratch = document.createElement('canvas');
  scratch.width = size;
  scratch.height = size;
  scratch.getContext('2d')?.putImageData(native, 0, 0);
  context.imageSmoothingEnabled = false;
  context.drawImage(scratch, 0, 0, size * zoom, size * zoom);
  context.fillStyle = mark === 'synthetic' ? '#b00020' : '#1b5e20';
  context.fillRect(0, size * zoom, canvas.width, BAND);
  context.fillStyle = '#fff';
  context.font = `bold ${BAND - 4}px sans-serif`;
  context.textBaseline = 'middle';
  context.fillText(mark === 'synthetic' ? 'SYNTHETIC' : 'YOUR IMAGE', 3, size * zoom + BAND / 2);
  return canvas;
}

function figure(canvas: HTMLCanvasElement, caption: string): HTMLElement {
  const fig = document.createElement('figure');
  const text = document.createElement('figcaption');
  text.textContent = caption;
  fig.append(canvas, text);
  return fig;
}

function imageAt(stack: Float32Array, index: number, per: number): Float32Array {
  return stack.slice(index * per, (index + 1) * per);
}

function fmt(v: number, digits = 1): string {
  return Number.isFinite(v) ? v.toFixed(digits) : 'n/a';
}

/** Decodes a PNG or JPEG file into RGBA pixels at its own size (never uploaded: read from disk by the browser). */
async function readImageFile(file: File): Promise<{ rgba: Uint8ClampedArray; width: number; height: number }> {
  const bitmap = await createImageBitmap(file).catch(() => {
    throw new Error(`${file.name} is not an image this browser can read (use a PNG or JPEG)`);
  });
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext('2d');
  if (!context) throw new Error('this browser cannot draw on a canvas');
  context.drawImage(bitmap, 0, 0);
  return { rgba: context.getImageData(0, 0, bitmap.width, bitmap.height).data, width: bitmap.width, height: bitmap.height };
}

/** Calls `take` with the image file dropped on `zone` or chosen through `input`. */
function acceptImages(zone: HTMLElement, input: HTMLInputElement, take: (file: File) => void): void {
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const file = e.dataTransfer?.files[0];
    if (file) take(file);
  });
  input.addEventListener('change', () => {
    const file = input.files?.[0];
    if (file) take(file);
  });
}

async function main(): Promise<void> {
  const site = (window as unknown as Record<string, SiteBundle | undefined>)[MODEL_DATA_GLOBAL];
  const backendLine = byId<HTMLElement>('backend');
  if (!site) {
    backendLine.textContent = 'model-data.js is missing or damaged: export the site again with medvae export-web.';
    throw new Error('no model data');
  }
  const params = new URLSearchParams(location.search);
  const requested = params.get('backend');
  const backend = await startBackend(BACKEND_ORDER.includes(requested as BackendName) ? (requested as BackendName) : undefined);
  document.body.dataset.backend = backend;
  const software =
    backend === 'webgl' && webglIsSoftware() ? ', drawn in software: the browser may not use a graphics card here, so it is slower' : '';
  backendLine.textContent = `Computing on this computer with ${BACKEND_LABELS[backend]}${software}. Nothing you open here leaves this computer.`;
  const explorer = new Explorer(site, buildModel(site), site.density);
  const { size, channels, per } = explorer;
  const classOf = (select: HTMLSelectElement): number | undefined => (select.value === '' ? undefined : Number(select.value));
  const className = (k: number): string => site.classNames[k] ?? `class ${k}`;

  // Samples.
  const samples = byId<HTMLElement>('samples');
  const grid = byId<HTMLElement>('grid');
  const temperature = byId<HTMLInputElement>('temperature');
  const temperatureValue = byId<HTMLElement>('temperature-value');
  const sampleClass = byId<HTMLSelectElement>('sample-class');
  const samplerPick = byId<HTMLSelectElement>('sampler');
  const samplerText = byId<HTMLElement>('sampler-line');
  const seedLine = byId<HTMLElement>('seed-line');
  let seed = Number(params.get('seed') ?? 0) || 0;
  let current: Float32Array = new Float32Array(0);
  const endpoints: (Float32Array | undefined)[] = [undefined, undefined];
  let nextEndpoint = 0;

  const drawGrid = (): Promise<void> =>
    inSection(samples, async () => {
      const t = Number(temperature.value);
      const label = classOf(sampleClass);
      const sampler = samplerPick.value as LatentSampler;
      current = await explorer.sample(GRID_SIZE, seed, t, label, sampler);
      grid.replaceChildren();
      for (let k = 0; k < GRID_SIZE; k++) {
        const k0 = site.labelWidth > 0 ? (label ?? k % site.labelWidth) : undefined;
        const caption = k0 === undefined ? `sample ${k + 1}` : `${className(k0)}`;
        const fig = figure(pictureCanvas(imageAt(current, k, per), size, channels, 'synthetic', caption), caption);
        fig.dataset.index = String(k);
        fig.title = 'Click to use this sample as an end of the interpolation below';
        fig.addEventListener('click', () => {
          endpoints[nextEndpoint] = imageAt(current, k, per);
          showEndpoint(nextEndpoint, endpoints[nextEndpoint]!, 'synthetic', `sample ${k + 1}`);
          nextEndpoint = 1 - nextEndpoint;
        });
        grid.append(fig);
      }
      grid.dataset.seed = String(seed);
      grid.dataset.temperature = String(t);
      grid.dataset.sampler = sampler;
      samplerText.textContent = samplerLine(site.sampling, sampler);
      seedLine.textContent =
        `Draw number ${seed} at temperature ${t.toFixed(2)}` +
        (t === 1
          ? ` — the same images as: medvae sample --run … --latent ${sampler} --n ${GRID_SIZE} --seed ${seed}${label === undefined ? '' : ` --label ${label}`}`
          : '');
    });
  byId<HTMLButtonElement>('redraw').addEventListener('click', () => {
    seed++;
    void drawGrid();
  });
  temperature.addEventListener('input', () => (temperatureValue.textContent = Number(temperature.value).toFixed(2)));
  temperature.addEventListener('change', () => void drawGrid());
  sampleClass.addEventListener('change', () => void drawGrid());
  samplerPick.addEventListener('change', () => void drawGrid());

  // Interpolation.
  const interpolation = byId<HTMLElement>('interpolation');
  const strip = byId<HTMLElement>('strip');
  const slots = [byId<HTMLElement>('end-a'), byId<HTMLElement>('end-b')];
  function showEndpoint(i: number, image: Float32Array, mark: Mark, caption: string): void {
    endpoints[i] = image;
    slots[i]!.querySelector('.picture-slot')!.replaceChildren(figure(pictureCanvas(image, size, channels, mark, caption), caption));
  }
  slots.forEach((slot, i) =>
    acceptImages(
      slot,
      slot.querySelector('input')!,
      (file) =>
        void inSection(interpolation, async () => {
          const { rgba, width, height } = await readImageFile(file);
          showEndpoint(i, explorer.prepare(rgba, width, height), 'yours', file.name);
        }),
    ),
  );
  const drawStrip = (): Promise<void> =>
    inSection(interpolation, async () => {
      const [a, b] = endpoints;
      if (!a || !b) throw new Error('choose two images first: click two samples above, or drop two images on the boxes');
      const images = await explorer.interpolate(a, b, STRIP_STEPS, classOf(sampleClass));
      strip.replaceChildren();
      for (let k = 0; k < STRIP_STEPS; k++) {
        const caption = `${Math.round((100 * k) / (STRIP_STEPS - 1))}% of the way`;
        strip.append(figure(pictureCanvas(imageAt(images, k, per), size, channels, 'synthetic', caption), caption));
      }
    });
  const interpolateButton = byId<HTMLButtonElement>('interpolate');
  if (explorer.canInterpolate()) interpolateButton.addEventListener('click', () => void drawStrip());
  else {
    interpolateButton.disabled = true;
    setState(
      interpolation,
      'done',
      'This model mixes a discrete code into its latent space: a straight line between two images is not defined.',
    );
  }

  // Your image: reconstruction and anomaly score; painting a mask and filling it in.
  const yours = byId<HTMLElement>('your-image');
  const imputation = byId<HTMLElement>('imputation');
  const imageClass = byId<HTMLSelectElement>('image-class');
  const mask = new Uint8Array(size * size);
  let prepared: Float32Array | undefined;
  const maskCanvas = byId<HTMLCanvasElement>('mask');
  const zoom = zoomFor(size);
  maskCanvas.width = size * zoom;
  maskCanvas.height = size * zoom;
  const brush = byId<HTMLInputElement>('brush');
  const paintMask = (): void => {
    const context = maskCanvas.getContext('2d');
    if (!context || !prepared) return;
    context.imageSmoothingEnabled = false;
    const picture = pictureCanvas(prepared, size, channels, 'yours', '');
    context.drawImage(picture, 0, 0, size * zoom, size * zoom, 0, 0, size * zoom, size * zoom);
    context.fillStyle = 'rgba(255, 0, 200, 0.6)';
    for (let p = 0; p < size * size; p++) if (mask[p] === 1) context.fillRect((p % size) * zoom, Math.floor(p / size) * zoom, zoom, zoom);
  };
  let painting = false;
  const paintAt = (e: PointerEvent): void => {
    const box = maskCanvas.getBoundingClientRect();
    const cx = ((e.clientX - box.left) / box.width) * size;
    const cy = ((e.clientY - box.top) / box.height) * size;
    const r = Number(brush.value) / 2;
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if (Math.hypot(x + 0.5 - cx, y + 0.5 - cy) <= r) mask[y * size + x] = 1;
    paintMask();
  };
  maskCanvas.addEventListener('pointerdown', (e) => {
    painting = true;
    paintAt(e);
  });
  maskCanvas.addEventListener('pointermove', (e) => painting && paintAt(e));
  window.addEventListener('pointerup', () => (painting = false));
  byId<HTMLButtonElement>('clear-mask').addEventListener('click', () => {
    mask.fill(0);
    paintMask();
  });

  const analyse = (): Promise<void> =>
    inSection(yours, async () => {
      if (!prepared) return;
      const result = await explorer.analyse(prepared, classOf(imageClass));
      const label = classOf(imageClass);
      const pictures = byId<HTMLElement>('analysis-pictures');
      pictures.replaceChildren(
        figure(
          pictureCanvas(prepared, size, channels, 'yours', 'as the model sees it'),
          `your image, as the model sees it (${size}×${size})`,
        ),
        figure(pictureCanvas(result.reconstruction, size, channels, 'synthetic', 'reconstruction'), 'the model’s reconstruction'),
      );
      const ref = site.reference.negElbo;
      const score = byId<HTMLElement>('score');
      score.dataset.negElbo = String(result.negElbo);
      score.dataset.percentile = String(result.percentile);
      score.dataset.reconMse = String(result.reconMse);
      byId<HTMLElement>('score-value').textContent = fmt(result.negElbo);
      byId<HTMLElement>('score-percentile').textContent = `${fmt(result.percentile, 0)}%`;
      byId<HTMLElement>('score-baseline').textContent =
        `training images: median ${fmt(quantileOf(ref, 0.5))}, 95% of them below ${fmt(quantileOf(ref, 0.95))}, 99% below ${fmt(quantileOf(ref, 0.99))}`;
      byId<HTMLElement>('mse-value').textContent = fmt(result.reconMse, 4);
      byId<HTMLElement>('mse-baseline').textContent =
        `training images: median ${fmt(quantileOf(site.reference.reconMse, 0.5), 4)}; this image is above ${fmt(result.reconMsePercentile, 0)}% of them`;
      byId<HTMLElement>('score-class').textContent = label === undefined ? '' : `(scored as ${className(label)})`;
    });
  acceptImages(
    yours,
    byId<HTMLInputElement>('image-file'),
    (file) =>
      void inSection(yours, async () => {
        const { rgba, width, height } = await readImageFile(file);
        prepared = explorer.prepare(rgba, width, height);
        mask.fill(0);
        paintMask();
        imputation.hidden = false;
        byId<HTMLElement>('image-name').textContent = file.name;
      }).then(analyse),
  );
  imageClass.addEventListener('change', () => void analyse());
  byId<HTMLButtonElement>('impute').addEventListener(
    'click',
    () =>
      void inSection(imputation, async () => {
        if (!prepared) throw new Error('drop an image above first');
        if (!mask.includes(1)) throw new Error('paint over the part to fill in first');
        const result = await explorer.impute(prepared, mask, classOf(imageClass));
        const out = byId<HTMLElement>('imputed');
        out.dataset.acceptance = String(result.acceptance);
        out.replaceChildren(
          figure(pictureCanvas(result.imputed, size, channels, 'synthetic', 'filled in by the model'), 'filled in by the model'),
          figure(
            pictureCanvas(result.harmonic, size, channels, 'synthetic', 'baseline: smooth fill'),
            'baseline: smooth fill from the edges',
          ),
        );
        byId<HTMLElement>('acceptance').textContent = fmt(100 * result.acceptance, 0);
      }),
  );

  await drawGrid();
  // Milliseconds from navigation to the first grid on screen (bench/web-explorer.ts reads it).
  document.body.dataset.gridDrawnMs = String(Math.round(performance.now()));
  // Default interpolation ends: the grid's first two samples.
  showEndpoint(0, imageAt(current, 0, per), 'synthetic', 'sample 1');
  showEndpoint(1, imageAt(current, 1, per), 'synthetic', 'sample 2');
  if (explorer.canInterpolate()) await drawStrip();
  document.body.dataset.ready = 'true';
}

main().catch((e: unknown) => {
  document.body.dataset.failed = (e as Error).message;
  const line = document.getElementById('backend');
  if (line) line.textContent = `The model could not start in this browser: ${(e as Error).message}`;
});
