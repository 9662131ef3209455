// `medvae gpus` through the real command line: it lists Chromium's SwiftShader as a software
// adapter when asked to look for one, says exactly why there is no adapter when the Vulkan loader
// is pointed at a manifest that is not there, and exits 0 either way (a diagnosis, not a failure).
// One process per environment (SwiftShader's JSON, no driver as text, a wrong MEDVAE_GPU_INDEX);
// the same report as people read it, and the missing-manifest diagnosis (which never reaches Dawn),
// in this process through the functions the command calls. Commander's usage error of an unknown
// flag (exit 2) is cli-errors.test.ts's, on `medvae train`: every subcommand inherits it from the root.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gpuReport, type GpuReport } from '../../src/backend/gpu-report.ts';
import { findSwiftShader, vulkanLoaderPath, vulkanProblem } from '../../src/backend/webgpu/vulkan.ts';
import { formatGpuReport } from '../../src/cli/gpus-command.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'medvae.js');
const dir = tempDir('medvae-gpus-');

/** The test's own environment without the variables that point the Vulkan loader or pick a GPU. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['VK_DRIVER_FILES', 'VK_ICD_FILENAMES', 'VK_ADD_DRIVER_FILES', 'MEDVAE_GPU_INDEX', 'DAWNNODE_BACKEND'])
    delete env[name];
  return { ...env, ...extra };
}

function gpus(args: string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'gpus', ...args], { encoding: 'utf8', env, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const noLoader =
  process.platform !== 'linux'
    ? 'the Vulkan diagnosis is Linux-only'
    : vulkanLoaderPath() === undefined
      ? 'no Vulkan loader (libvulkan.so.1) on this machine; install libvulkan1'
      : undefined;
// --allow-software-gpu adds SwiftShader only where Vulkan has no driver of its own, as --backend webgpu does.
const noSwiftShader =
  noLoader ??
  (findSwiftShader() === undefined
    ? 'no SwiftShader manifest (install chromium, which ships it)'
    : vulkanProblem(cleanEnv()) === undefined
      ? 'a Vulkan driver is registered here, so --allow-software-gpu adds no SwiftShader'
      : undefined);

/** `medvae gpus --allow-software-gpu --json` where SwiftShader is to be found, which two tests read. */
let software: GpuReport;

before(() => {
  if (noSwiftShader) return;
  const r = gpus(['--allow-software-gpu', '--json'], cleanEnv());
  assert.equal(r.status, 0, r.stderr);
  software = JSON.parse(r.stdout) as GpuReport;
});

test(
  '--allow-software-gpu --json lists SwiftShader as a software adapter, which --backend webgpu takes and auto never does',
  { skip: noSwiftShader },
  () => {
    const report = software;
    const swiftshader = report.webgpu.adapters.find((a) => /swiftshader/i.test(a.name));
    assert.ok(swiftshader, `SwiftShader among ${JSON.stringify(report.webgpu.adapters.map((a) => a.name))}`);
    assert.equal(swiftshader.software, true);
    assert.equal(swiftshader.backend, 'vulkan');
    assert.ok(
      swiftshader.limits.maxBufferSize > 0 && swiftshader.limits.maxStorageBufferBindingSize > 0,
      JSON.stringify(swiftshader.limits),
    );
    const vulkan = report.webgpu.vulkan;
    assert.ok(vulkan);
    assert.equal(vulkan.swiftshader, findSwiftShader(), 'the manifest it added is named');
    assert.ok(
      vulkan.drivers.some((d) => d.manifest === findSwiftShader()),
      'the added manifest is among the drivers',
    );
    // With no hardware adapter, --backend webgpu takes the software one; auto never does.
    if (report.webgpu.adapters.every((a) => a.software)) {
      assert.deepEqual(report.webgpu.webgpu && 'index' in report.webgpu.webgpu ? report.webgpu.webgpu.index : undefined, swiftshader.index);
      assert.notEqual(report.auto.route, 'webgpu');
      if (report.auto.route === 'none') assert.match(report.auto.why, /only a software adapter .*auto never takes/);
    }
    assert.equal(report.env.VK_DRIVER_FILES, undefined, 'the environment shown is the one given, before SwiftShader was added');
  },
);

test('the same listing for people: the adapter, its limits and what auto would do', { skip: noSwiftShader }, () => {
  // What `medvae gpus` prints without --json (a process prints it in the no-driver test below).
  const text = formatGpuReport(software, true);
  assert.match(text, /^ {2}0 {2}SwiftShader.*\[vulkan, software\]/m);
  assert.match(text, /maxBufferSize \d+ MiB, maxStorageBufferBindingSize \d+ MiB/);
  assert.match(text, /^--backend auto: /m);
  assert.match(text, /^CUDA \(@tensorflow\/tfjs-node-gpu\)$/m);
});

test('VK_ICD_FILENAMES naming a manifest that does not exist: no adapter, and the listing says why', { skip: noLoader }, async () => {
  const missing = join(dir, 'none.json');
  const report = await gpuReport({ allowSoftware: false, env: cleanEnv({ VK_ICD_FILENAMES: missing }) });
  assert.deepEqual(report.webgpu.adapters, []);
  assert.equal(report.webgpu.vulkan?.namedBy, 'VK_ICD_FILENAMES');
  assert.ok(report.webgpu.why?.includes(`VK_ICD_FILENAMES=${missing} names no readable driver manifest`), report.webgpu.why ?? 'null');
  assert.equal(report.env.VK_ICD_FILENAMES, missing);
  assert.notEqual(report.auto.route, 'webgpu');
  if (report.auto.route === 'none') assert.ok(report.auto.why.includes('names no readable driver manifest'), report.auto.why);
});

test('an empty manifest is no driver either, and the text listing says so in one line', { skip: noLoader }, () => {
  const empty = join(dir, 'empty.json');
  writeFileSync(empty, '');
  const r = gpus([], cleanEnv({ VK_ICD_FILENAMES: empty }));
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(`^ {2}no adapter: no Vulkan driver registered: VK_ICD_FILENAMES=${empty.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} names`, 'm'),
  );
  assert.match(r.stdout, /^ {2}Vulkan drivers \(named by VK_ICD_FILENAMES\): none$/m);
  assert.match(r.stdout, /^--backend auto: (no GPU|tfjs-node-gpu)/m);
});

test('a wrong MEDVAE_GPU_INDEX is reported, not thrown', { skip: noSwiftShader }, () => {
  const r = gpus(['--allow-software-gpu', '--json'], cleanEnv({ MEDVAE_GPU_INDEX: 'two' }));
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as GpuReport;
  assert.deepEqual(report.webgpu.webgpu, { error: "MEDVAE_GPU_INDEX must be a GPU index (0, 1, ...), got 'two'" });
});
