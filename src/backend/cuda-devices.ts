// What the CUDA route (@tensorflow/tfjs-node-gpu) can reach, read without loading it: the package's
// install state, its libtensorflow, and the NVIDIA GPUs the driver exposes. Loading tfjs-node-gpu
// would initialise CUDA in this process (seconds, and a crash where the CUDA libraries do not match),
// so `medvae gpus` asks nvidia-smi, or the kernel driver's files where nvidia-smi is not installed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { nativePackageState, unavailableReason, type NativePackageState } from './tfjs-node-install.ts';

export const TFJS_NODE_GPU = '@tensorflow/tfjs-node-gpu';

/** Where the NVIDIA kernel driver describes itself and each GPU (Linux). */
export const NVIDIA_PROC = { version: '/proc/driver/nvidia/version', gpus: '/proc/driver/nvidia/gpus' };

export interface NvidiaGpu {
  /** nvidia-smi's index: PCI bus order, as CUDA numbers devices with CUDA_DEVICE_ORDER=PCI_BUS_ID. */
  index: number;
  name: string;
  /** PCI address, e.g. 0000:41:00.0. */
  bus: string;
  uuid: string | null;
  memoryMiB: number | null;
}

export interface NvidiaReport {
  /** The kernel driver's version; null when no NVIDIA driver is loaded. */
  driver: string | null;
  /** Where the GPU list comes from; null when nothing could list them. */
  source: 'nvidia-smi' | 'driver files' | null;
  gpus: NvidiaGpu[];
}

export interface TensorflowGpuReport {
  package: typeof TFJS_NODE_GPU;
  state: NativePackageState;
  /** Why it cannot be the backend; null when installed. */
  why: string | null;
  /** The libtensorflow its install script downloads; null when absent (or the package is). */
  libtensorflow: string | null;
  /** The variables CUDA reads to number and hide devices (unset: null). */
  cudaVisibleDevices: string | null;
  cudaDeviceOrder: string | null;
}

/** "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..." -> "550.54.15". */
export function parseDriverVersion(text: string): string | null {
  return /Kernel Module\s+(?:for\s+\S+\s+)?([0-9][0-9.]*)/.exec(text)?.[1] ?? null;
}

/** PCI addresses as nvidia-smi prints them (00000000:41:00.0) shortened to the kernel's form (0000:41:00.0). */
function shortBus(bus: string): string {
  const m = /^0*([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(bus.trim());
  return m ? `${m[1]}:${m[2]}:${m[3]}.${m[4]}`.toLowerCase() : bus.trim().toLowerCase();
}

/** `nvidia-smi --query-gpu=index,name,pci.bus_id,uuid,memory.total --format=csv,noheader,nounits` output. */
export function parseNvidiaSmi(csv: string): NvidiaGpu[] {
  const out: NvidiaGpu[] = [];
  for (const line of csv.split('\n')) {
    const fields = line.split(',').map((f) => f.trim());
    if (fields.length < 5 || !/^\d+$/.test(fields[0]!)) continue;
    const memory = Number(fields[4]);
    out.push({
      index: Number(fields[0]),
      name: fields[1]!,
      bus: shortBus(fields[2]!),
      uuid: fields[3] || null,
      memoryMiB: Number.isFinite(memory) && fields[4] !== '' ? memory : null,
    });
  }
  return out;
}

/** The GPUs under /proc/driver/nvidia/gpus (one folder per PCI address), numbered in bus order as nvidia-smi does. */
export function gpusFromDriverFiles(dir: string = NVIDIA_PROC.gpus): NvidiaGpu[] {
  let buses: string[];
  try {
    buses = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return buses.map((bus, index) => {
    let info = '';
    try {
      info = readFileSync(join(dir, bus, 'information'), 'utf8');
    } catch {
      // A GPU folder without its file still counts: its address is known.
    }
    const field = (name: string): string | null => new RegExp(`^${name}:\\s*(.+)$`, 'm').exec(info)?.[1]?.trim() ?? null;
    return {
      index,
      name: field('Model') ?? 'unknown NVIDIA GPU',
      bus: shortBus(field('Bus Location') ?? bus),
      uuid: field('GPU UUID'),
      memoryMiB: null,
    };
  });
}

export interface NvidiaSources {
  versionFile?: string;
  gpusDir?: string;
  /** The nvidia-smi to run; absent: the one on PATH. */
  nvidiaSmi?: string;
}

/** The NVIDIA driver and its GPUs: from nvidia-smi where it runs, else from the driver's files. */
export function nvidiaReport(sources: NvidiaSources = {}): NvidiaReport {
  let driver: string | null = null;
  try {
    driver = parseDriverVersion(readFileSync(sources.versionFile ?? NVIDIA_PROC.version, 'utf8'));
  } catch {
    driver = null;
  }
  const smi = spawnSync(
    sources.nvidiaSmi ?? 'nvidia-smi',
    ['--query-gpu=index,name,pci.bus_id,uuid,memory.total', '--format=csv,noheader,nounits'],
    // nvidia-smi can hang on a wedged GPU; a listing is not worth waiting long for.
    { encoding: 'utf8', timeout: 15_000 },
  );
  if (smi.status === 0) {
    const gpus = parseNvidiaSmi(smi.stdout);
    if (gpus.length > 0) return { driver, source: 'nvidia-smi', gpus };
  }
  const gpus = gpusFromDriverFiles(sources.gpusDir);
  return { driver, source: gpus.length > 0 ? 'driver files' : null, gpus };
}

/** libtensorflow where tfjs-node's install script puts it (deps/lib; lib/napi-v*\/ on Windows), or null. */
export function findLibtensorflow(packageRoot: string): string | null {
  const candidates: string[] = [];
  const deps = join(packageRoot, 'deps', 'lib');
  if (existsSync(deps)) candidates.push(...readdirSync(deps).map((f) => join(deps, f)));
  const lib = join(packageRoot, 'lib');
  if (existsSync(lib))
    for (const d of readdirSync(lib).filter((d) => d.startsWith('napi-v'))) {
      const napi = join(lib, d);
      if (existsSync(napi)) candidates.push(...readdirSync(napi).map((f) => join(napi, f)));
    }
  return candidates.find((p) => /(^|[/\\])(lib)?tensorflow(\.so|\.\d|\.dll|\.dylib)/.test(p)) ?? null;
}

/** tfjs-node-gpu's install state and what CUDA would be told; `from`: where resolution starts (tests point it elsewhere). */
export function tensorflowGpuReport(env: NodeJS.ProcessEnv = process.env, from: string = import.meta.url): TensorflowGpuReport {
  const state = nativePackageState(TFJS_NODE_GPU, from);
  let libtensorflow: string | null = null;
  if (state !== 'absent') {
    const root = dirname(createRequire(from).resolve(`${TFJS_NODE_GPU}/package.json`));
    libtensorflow = findLibtensorflow(root);
  }
  let why = unavailableReason(TFJS_NODE_GPU, 'tfjs-node-gpu', state) ?? null;
  if (why !== null && state === 'no-binding' && libtensorflow === null) why += '; libtensorflow was not downloaded either';
  return {
    package: TFJS_NODE_GPU,
    state,
    why,
    libtensorflow,
    cudaVisibleDevices: env.CUDA_VISIBLE_DEVICES ?? null,
    cudaDeviceOrder: env.CUDA_DEVICE_ORDER ?? null,
  };
}
