// What the Vulkan loader will find on Linux, read from the files it reads: whether the loader
// library is installed, which drivers (ICDs) are registered, and where a software driver
// (SwiftShader, shipped inside Chromium) lies. Dawn itself only says "no adapter"; these files say
// why, and let `--allow-software-gpu` find SwiftShader without an environment variable.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The variables with which a user points the loader at drivers themselves. */
export const ICD_ENV_VARS = ['VK_DRIVER_FILES', 'VK_ICD_FILENAMES'] as const;

const LOADER_LIBRARY_DIRS = [
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
  '/lib/x86_64-linux-gnu',
  '/lib64',
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
export function vulkanLoaderPath(dirs: readonly string[] = LOADER_LIBRARY_DIRS): string | undefined {
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

/** The drivers the loader would load: those the environment names, else every manifest in the standard folders. */
export function registeredDrivers(env: NodeJS.ProcessEnv = process.env, dirs: readonly string[] = ICD_DIRS): VulkanDriver[] {
  const named = ICD_ENV_VARS.map((v) => env[v]).find((v) => v !== undefined && v !== '');
  const manifests =
    named !== undefined
      ? named.split(':').filter((p) => p !== '')
      : dirs.flatMap((d) => {
          try {
            return readdirSync(d)
              .filter((f) => f.endsWith('.json'))
              .map((f) => join(d, f));
          } catch {
            return [];
          }
        });
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
export function vulkanProblem(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (process.platform !== 'linux') return undefined;
  if (vulkanLoaderPath() === undefined) return 'no Vulkan loader (libvulkan.so.1): install libvulkan1 (Debian/Ubuntu) or vulkan-loader';
  const drivers = registeredDrivers(env);
  if (drivers.length === 0) {
    const nvidia = existsSync('/proc/driver/nvidia/version');
    return nvidia
      ? "no Vulkan driver registered although an NVIDIA driver is loaded: in a container, NVIDIA's runtime mounts its Vulkan driver only with NVIDIA_DRIVER_CAPABILITIES including 'graphics' (e.g. compute,utility,graphics); on a host, install the driver's Vulkan part (e.g. libnvidia-gl)"
      : "no Vulkan driver registered (no manifest in /etc/vulkan/icd.d or /usr/share/vulkan/icd.d): install your GPU vendor's Vulkan driver (mesa-vulkan-drivers for AMD and Intel)";
  }
  return undefined;
}
