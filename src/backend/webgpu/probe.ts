// What WebGPU can reach on this machine, and exactly why not where it cannot: the Vulkan loader and
// drivers (Linux), the two optional packages, every adapter Dawn offers, and which one
// `--backend webgpu` and `--backend auto` would take. `medvae gpus` prints it. No device is
// created: listing adapters is all Dawn is asked for.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { DAWN_PACKAGE, DawnUnavailableError, loadDawn, type Dawn } from './dawn.ts';
import { chooseAdapter, listAdapters, type AdapterDescription } from './adapters.ts';
import {
  LIBRARY_DIRS,
  addSwiftShader,
  namedDriverVariable,
  NVIDIA_VERSION_FILE,
  registeredDrivers,
  vulkanLoaderPath,
  vulkanProblem,
  type VulkanPaths,
} from './vulkan.ts';
import { gpuIndexFromEnv, TFJS_WEBGPU_PACKAGE } from './discover.ts';

export interface DriverCheck {
  manifest: string;
  library: string;
  /**
   * Where the library was found; null when not in LD_LIBRARY_PATH nor the standard folders (the
   * loader may still find it through ld.so's cache, so this is a hint, not a verdict).
   */
  found: string | null;
}

export interface VulkanReport {
  loader: string | null;
  /** VK_DRIVER_FILES or VK_ICD_FILENAMES, when it replaces the standard folders. */
  namedBy: string | null;
  drivers: DriverCheck[];
  /** SwiftShader's manifest, when --allow-software-gpu added it. */
  swiftshader: string | null;
  /** The NVIDIA kernel driver is loaded (its Vulkan part is another matter). */
  nvidiaKernelDriver: boolean;
  /** Why Vulkan can offer no adapter; null when a loader and a driver are present. */
  problem: string | null;
  /** What else looks wrong, each as a user can act on it. */
  hints: string[];
}

export type AdapterPick = { index: number; name: string; note: string } | { error: string };

export interface WebgpuReport {
  /** Versions of the two optional packages --backend webgpu needs; null where not installed. */
  packages: { [DAWN_PACKAGE]: string | null; [TFJS_WEBGPU_PACKAGE]: string | null };
  /** Linux only: what the Vulkan loader finds. */
  vulkan: VulkanReport | null;
  /** Why no adapter could be listed; null when Dawn answered (adapters may still be []). */
  why: string | null;
  adapters: AdapterDescription[];
  /** The GPU index the choices below are for (GPU_INDEX_ENV, which medvae-dist sets per worker). */
  gpuIndex: number;
  /** What `--backend webgpu` would take (with the --allow-software-gpu given). */
  webgpu: AdapterPick | null;
  /** What the webgpu step of `--backend auto` would take: hardware only. */
  auto: AdapterPick | null;
}

export interface ProbeOptions {
  allowSoftware: boolean;
  /** The environment to read and, with allowSoftware, to point at SwiftShader (Dawn reads the process's own). */
  env?: NodeJS.ProcessEnv;
  paths?: VulkanPaths;
  /** SwiftShader manifests to look for (tests). */
  swiftshaderCandidates?: readonly string[];
}

function packageVersion(name: string): string | null {
  try {
    const file = createRequire(import.meta.url).resolve(`${name}/package.json`);
    const version = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return null;
  }
}

/** The library a manifest names, resolved as the loader does: absolute, relative to the manifest, or a bare name for the dynamic linker. */
export function findDriverLibrary(
  manifest: string,
  library: string,
  env: NodeJS.ProcessEnv = process.env,
  dirs: readonly string[] = LIBRARY_DIRS,
): string | null {
  if (isAbsolute(library)) return existsSync(library) ? library : null;
  if (library.includes('/')) {
    const path = join(dirname(manifest), library);
    return existsSync(path) ? path : null;
  }
  const search = [...(env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d !== ''), ...dirs];
  return search.map((d) => join(d, library)).find((p) => existsSync(p)) ?? null;
}

/** Whether NVIDIA's container runtime was told to mount graphics (Vulkan) libraries; undefined when the variable is unset. */
function graphicsCapability(env: NodeJS.ProcessEnv): boolean | undefined {
  const caps = env.NVIDIA_DRIVER_CAPABILITIES;
  if (caps === undefined || caps === '') return undefined;
  const list = caps.split(',').map((c) => c.trim());
  return list.includes('all') || list.includes('graphics');
}

export interface DiagnoseOptions {
  paths?: VulkanPaths;
  /** Where bare library names are looked for after LD_LIBRARY_PATH (tests). */
  libraryDirs?: readonly string[];
  /** A SwiftShader manifest --allow-software-gpu added. */
  swiftshader?: string;
}

/** The loader, the drivers and what looks wrong with them. */
export function diagnoseVulkan(env: NodeJS.ProcessEnv, options: DiagnoseOptions = {}): VulkanReport {
  const { paths = {}, libraryDirs = LIBRARY_DIRS } = options;
  const drivers = registeredDrivers(env, paths.icdDirs).map((d) => ({
    ...d,
    found: findDriverLibrary(d.manifest, d.library, env, libraryDirs),
  }));
  const nvidiaKernelDriver = existsSync(paths.nvidiaVersionFile ?? NVIDIA_VERSION_FILE);
  const hints: string[] = [];
  for (const d of drivers.filter((d) => d.found === null))
    hints.push(
      `${d.manifest} names ${d.library}, which is not in LD_LIBRARY_PATH nor the standard library folders: the loader will likely skip that driver`,
    );
  if (graphicsCapability(env) === false)
    hints.push(
      `NVIDIA_DRIVER_CAPABILITIES=${env.NVIDIA_DRIVER_CAPABILITIES} lacks 'graphics': NVIDIA's container runtime then mounts no Vulkan driver (use compute,utility,graphics)`,
    );
  const glx = drivers.find((d) => basename(d.library).startsWith('libGLX_nvidia'));
  if (glx !== undefined && findDriverLibrary(glx.manifest, 'libXext.so.6', env, libraryDirs) === null)
    hints.push(
      `${glx.manifest} registers NVIDIA's Vulkan driver through ${glx.library}, which needs X11 client libraries (libXext.so.6) missing here: install them (libxext6), or on a headless server register the EGL flavour, a manifest naming libEGL_nvidia.so.0`,
    );
  return {
    loader: vulkanLoaderPath(paths.loaderDirs) ?? null,
    namedBy: namedDriverVariable(env)?.variable ?? null,
    drivers,
    swiftshader: options.swiftshader ?? null,
    nvidiaKernelDriver,
    problem: vulkanProblem(env, paths) ?? null,
    hints,
  };
}

function pick(adapters: AdapterDescription[], gpuIndex: number, allowSoftware: boolean): AdapterPick {
  try {
    const { adapter, note, twin } = chooseAdapter(adapters, gpuIndex, allowSoftware);
    const pinned = twin
      ? `, one of ${twin.count} GPUs of that name: pinned by PCI address at start-up where Mesa's device-select layer is installed`
      : '';
    return { index: adapter.index, name: adapter.name, note: `${note}${pinned}` };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

/** The GPU index this process would use, or why the variable that sets it is wrong. */
function gpuIndexOf(env: NodeJS.ProcessEnv): number | string {
  try {
    return gpuIndexFromEnv(env);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * Everything WebGPU can tell about this machine. With `allowSoftware`, Chromium's SwiftShader is
 * added to the drivers where Vulkan has none (as `--backend webgpu --allow-software-gpu` does), so
 * the listing shows it.
 */
export async function webgpuReport(options: ProbeOptions): Promise<WebgpuReport> {
  const env = options.env ?? process.env;
  const packages = { [DAWN_PACKAGE]: packageVersion(DAWN_PACKAGE), [TFJS_WEBGPU_PACKAGE]: packageVersion(TFJS_WEBGPU_PACKAGE) };
  const index = gpuIndexOf(env);
  const gpuIndex = typeof index === 'number' ? index : 0;
  const report: WebgpuReport = { packages, vulkan: null, why: null, adapters: [], gpuIndex, webgpu: null, auto: null };
  if (process.platform === 'linux') {
    let vulkan = diagnoseVulkan(env, { paths: options.paths });
    if (vulkan.problem !== null && options.allowSoftware) {
      const swiftshader = addSwiftShader(env, options.swiftshaderCandidates);
      if (swiftshader !== undefined) vulkan = diagnoseVulkan(env, { paths: options.paths, swiftshader });
    }
    report.vulkan = vulkan;
    if (vulkan.problem !== null) {
      // Dawn would only print warnings of its own here; the files already say why.
      report.why = options.allowSoftware ? `${vulkan.problem}; no SwiftShader either (install chromium, which ships it)` : vulkan.problem;
      return report;
    }
  }
  let dawn: Dawn;
  try {
    dawn = await loadDawn();
  } catch (e) {
    if (!(e instanceof DawnUnavailableError)) throw e;
    report.why = e.missing ? `${e.message}: \`npm install ${DAWN_PACKAGE} ${TFJS_WEBGPU_PACKAGE}\` (optional dependencies)` : e.message;
    return report;
  }
  report.adapters = await listAdapters(dawn);
  if (report.adapters.length === 0) {
    const hints = report.vulkan?.hints ?? [];
    report.why = `Dawn found no adapter${hints.length > 0 ? `: ${hints.join('; ')}` : ''}`;
    return report;
  }
  if (typeof index === 'string') {
    report.webgpu = report.auto = { error: index };
    return report;
  }
  report.webgpu = pick(report.adapters, gpuIndex, options.allowSoftware);
  report.auto = pick(report.adapters, gpuIndex, false);
  return report;
}
