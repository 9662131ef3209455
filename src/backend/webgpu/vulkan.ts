// What the Vulkan loader will find on Linux, read from the files it reads: whether the loader
// library is installed, which drivers (ICDs) are registered, and where a software driver
// (SwiftShader, shipped inside Chromium) lies. Dawn itself only says "no adapter"; these files say
// why, and let `--allow-software-gpu` find SwiftShader without an environment variable.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The variables with which a user points the loader at drivers themselves. */
export const ICD_ENV_VARS = ['VK_DRIVER_FILES', 'VK_ICD_FILENAMES'] as const;

/** Folders the dynamic linker searches by default: where the loader and a manifest's bare library name are found. */
export const LIBRARY_DIRS = [
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
  '/lib/x86_64-linux-gnu',
  '/lib64',
  '/lib',
];

/** Where the loader looks for driver manifests (the XDG defaults of its documentation). */
const ICD_DIRS = ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/usr/local/etc/vulkan/icd.d'];

/** SwiftShader's manifest as browsers ship it (Debian's chromium package, Google Chrome). */
const SWIFTSHADER_ICDS = [
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/lib64/chromium/vk_swiftshader_icd.json',
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json',
  '/opt/google/chrome/vk_swiftshader_icd.json',
];

export interface VulkanDriver {
  manifest: string;
  /** The driver library the manifest names. */
  library: string;
}

/** The Vulkan loader library (libvulkan.so.1), or undefined when it is not installed. */
export function vulkanLoaderPath(dirs: readonly string[] = LIBRARY_DIRS): string | undefined {
  return dirs.map((d) => join(d, 'libvulkan.so.1')).find((p) => existsSync(p));
}

function readDriver(manifest: string): VulkanDriver | undefined {
  try {
    const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { ICD?: { library_path?: unknown } };
    const library = parsed.ICD?.library_path;
    return typeof library === 'string' ? { manifest, library } : undefined;
  } catch {
    return undefined;
  }
}

/** Where this module looks; tests point every path at fake folders. */
export interface VulkanPaths {
  /** Folders that may hold libvulkan.so.1. */
  loaderDirs?: readonly string[];
  /** The loader's standard folders of driver manifests. */
  icdDirs?: readonly string[];
  /** The NVIDIA kernel driver's version file: present when the driver is loaded. */
  nvidiaVersionFile?: string;
}

export const NVIDIA_VERSION_FILE = '/proc/driver/nvidia/version';

/** The manifests in a folder (the loader reads every *.json of it), or [] when it cannot be read. */
function manifestsIn(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The variable that replaces the standard folders, and its value, when one is set. */
export function namedDriverVariable(env: NodeJS.ProcessEnv = process.env): { variable: string; value: string } | undefined {
  for (const variable of ICD_ENV_VARS) {
    const value = env[variable];
    if (value !== undefined && value !== '') return { variable, value };
  }
  return undefined;
}

/** The manifest paths a variable lists: files as named, folders by their *.json (as the loader reads VK_DRIVER_FILES). */
function listedManifests(value: string): string[] {
  return value
    .split(':')
    .filter((p) => p !== '')
    .flatMap((p) => (isDirectory(p) ? manifestsIn(p) : [p]));
}

/**
 * The drivers the loader would load: those VK_DRIVER_FILES (or the older VK_ICD_FILENAMES) names,
 * else every manifest in the standard folders; VK_ADD_DRIVER_FILES adds to either.
 */
export function registeredDrivers(env: NodeJS.ProcessEnv = process.env, dirs: readonly string[] = ICD_DIRS): VulkanDriver[] {
  const named = namedDriverVariable(env);
  const added = env.VK_ADD_DRIVER_FILES ? listedManifests(env.VK_ADD_DRIVER_FILES) : [];
  const manifests = [...added, ...(named !== undefined ? listedManifests(named.value) : dirs.flatMap(manifestsIn))];
  return manifests.map(readDriver).filter((d): d is VulkanDriver => d !== undefined);
}

/** SwiftShader's manifest shipped with a browser on this machine, if any. */
export function findSwiftShader(candidates: readonly string[] = SWIFTSHADER_ICDS): string | undefined {
  return candidates.find((p) => existsSync(p));
}

/**
 * Points the loader at SwiftShader in this process (before Dawn creates its instance), keeping
 * drivers the user named. Returns the manifest, or undefined when none was found.
 */
export function addSwiftShader(env: NodeJS.ProcessEnv = process.env, candidates?: readonly string[]): string | undefined {
  const manifest = findSwiftShader(candidates);
  if (manifest === undefined) return undefined;
  const named = env.VK_DRIVER_FILES ?? env.VK_ICD_FILENAMES;
  const list = named ? [...named.split(':').filter((p) => p !== '' && p !== manifest), manifest].join(':') : manifest;
  // Older loaders read VK_ICD_FILENAMES only, newer ones prefer VK_DRIVER_FILES: set both alike.
  env.VK_ICD_FILENAMES = list;
  env.VK_DRIVER_FILES = list;
  return manifest;
}

/**
 * Why Vulkan can offer no hardware adapter, as a user can act on it, or undefined when a loader
 * and at least one driver are present.
 */
export function vulkanProblem(env: NodeJS.ProcessEnv = process.env, paths: VulkanPaths = {}): string | undefined {
  if (process.platform !== 'linux') return undefined;
  if (vulkanLoaderPath(paths.loaderDirs) === undefined)
    return 'no Vulkan loader (libvulkan.so.1): install libvulkan1 (Debian/Ubuntu) or vulkan-loader';
  const drivers = registeredDrivers(env, paths.icdDirs);
  if (drivers.length > 0) return undefined;
  const named = namedDriverVariable(env);
  if (named !== undefined) {
    // The variable replaces the standard folders, so a wrong path there hides every installed driver.
    return `no Vulkan driver registered: ${named.variable}=${named.value} names no readable driver manifest (a JSON file with ICD.library_path); fix or unset it`;
  }
  const nvidia = existsSync(paths.nvidiaVersionFile ?? NVIDIA_VERSION_FILE);
  return nvidia
    ? "no Vulkan driver registered although an NVIDIA driver is loaded: in a container, NVIDIA's runtime mounts its Vulkan driver only with NVIDIA_DRIVER_CAPABILITIES including 'graphics' (e.g. compute,utility,graphics); on a host, install the driver's Vulkan part (e.g. libnvidia-gl)"
    : "no Vulkan driver registered (no manifest in /etc/vulkan/icd.d or /usr/share/vulkan/icd.d): install your GPU vendor's Vulkan driver (mesa-vulkan-drivers for AMD and Intel)";
}
