// `medvae gpus`: what each GPU route sees here (WebGPU adapters, tfjs-node-gpu and the NVIDIA
// GPUs), which one `--backend auto` would take, or exactly why none. Finding no GPU is a diagnosis,
// not a failure: it exits 0 whenever it could look.
import type { Command } from 'commander';
import type { GpuReport } from '../backend/gpu-report.ts';
import type { AdapterPick, VulkanReport } from '../backend/webgpu/probe.ts';
import { allowSoftwareGpuOption } from './backend-flags.ts';
import { runCommand } from './errors.ts';

const MIB = 2 ** 20;

function mib(bytes: number): string {
  return `${Math.round(bytes / MIB)} MiB`;
}

function pickLine(label: string, pick: AdapterPick | null): string[] {
  if (pick === null) return [];
  return ['error' in pick ? `  ${label}: none (${pick.error})` : `  ${label}: adapter ${pick.index}, ${pick.name} (${pick.note})`];
}

function vulkanLines(v: VulkanReport): string[] {
  const lines = [`  Vulkan loader: ${v.loader ?? 'not installed'}`];
  // Once --allow-software-gpu has added SwiftShader, the variable names what medvae put there, not the user.
  const from = v.namedBy !== null && v.swiftshader === null ? ` (named by ${v.namedBy})` : '';
  if (v.drivers.length === 0) lines.push(`  Vulkan drivers${from}: none`);
  for (const d of v.drivers) {
    const added = d.manifest === v.swiftshader ? ', added by --allow-software-gpu' : '';
    lines.push(`  Vulkan driver${from}: ${d.manifest} -> ${d.library}${d.found === null ? ' (library not found)' : ''}${added}`);
  }
  if (v.nvidiaKernelDriver) lines.push('  NVIDIA kernel driver: loaded');
  for (const hint of v.hints) lines.push(`  note: ${hint}`);
  return lines;
}

/** The report as a person reads it. */
export function formatGpuReport(r: GpuReport, allowSoftware: boolean): string {
  const w = r.webgpu;
  const versions = Object.entries(w.packages)
    .map(([name, version]) => `${name} ${version ?? 'not installed'}`)
    .join(', ');
  const lines = [`WebGPU (${versions})`];
  if (w.vulkan !== null) lines.push(...vulkanLines(w.vulkan));
  if (w.why !== null) lines.push(`  no adapter: ${w.why}`);
  if (!allowSoftware && !w.adapters.some((a) => a.software))
    lines.push('  (--allow-software-gpu also looks for a software adapter: SwiftShader, which chromium ships)');
  for (const a of w.adapters) {
    const what = [a.vendor, a.architecture, a.device].filter((s) => s !== '').join(' ');
    lines.push(
      `  ${a.index}  ${a.name}  [${a.backend || '?'}${a.software ? ', software' : ''}] ${what}${a.driver ? `, ${/driver/i.test(a.driver) ? a.driver : `driver ${a.driver}`}` : ''}`,
      `     maxBufferSize ${mib(a.limits.maxBufferSize)}, maxStorageBufferBindingSize ${mib(a.limits.maxStorageBufferBindingSize)}`,
    );
  }
  lines.push(...pickLine(`--backend webgpu (GPU ${w.gpuIndex})`, w.webgpu));
  const t = r.tensorflow;
  lines.push('', `CUDA (${t.package})`, `  ${t.state === 'installed' ? 'installed' : t.why}`);
  if (t.libtensorflow !== null) lines.push(`  libtensorflow: ${t.libtensorflow}`);
  if (t.cudaVisibleDevices !== null) lines.push(`  CUDA_VISIBLE_DEVICES=${t.cudaVisibleDevices}`);
  const n = r.nvidia;
  lines.push(`  NVIDIA driver: ${n.driver ?? (n.gpus.length > 0 ? 'version unknown' : 'not loaded')}`);
  for (const g of n.gpus)
    lines.push(`  ${g.index}  ${g.name}  ${g.bus}${g.memoryMiB !== null ? `, ${g.memoryMiB} MiB` : ''}${g.uuid ? `, ${g.uuid}` : ''}`);
  if (n.source !== null) lines.push(`  (listed by ${n.source})`);
  const env = Object.entries(r.env);
  if (env.length > 0) lines.push('', 'Environment', ...env.map(([k, v]) => `  ${k}=${v}`));
  const a = r.auto;
  const took =
    a.route === 'cuda' ? 'tfjs-node-gpu (CUDA)' : a.route === 'webgpu' ? `webgpu adapter ${a.adapter.index}, ${a.adapter.name}` : 'no GPU';
  lines.push('', `--backend auto: ${took}: ${a.why}`);
  return `${lines.join('\n')}\n`;
}

export function registerGpusCommand(program: Command): void {
  program
    .command('gpus')
    .description(
      'list what each GPU route sees (WebGPU adapters, tfjs-node-gpu and CUDA devices), which one --backend auto takes, or why none',
    )
    .addOption(allowSoftwareGpuOption())
    .option('--json', 'print the report as one JSON object')
    .option('--debug', 'print stack traces on errors')
    .action((opts: { allowSoftwareGpu?: boolean; json?: boolean; debug?: boolean }) =>
      runCommand(Boolean(opts.debug), async () => {
        // Loaded here, at its one use: registering the command (`medvae --help`) needs no GPU probe.
        const { gpuReport } = await import('../backend/gpu-report.ts');
        const report = await gpuReport({ allowSoftware: opts.allowSoftwareGpu === true });
        process.stdout.write(
          opts.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatGpuReport(report, opts.allowSoftwareGpu === true),
        );
      }),
    );
}
