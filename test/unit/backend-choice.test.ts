// Which backend a process computes on: what the GPU probe reports (Vulkan drivers and loader,
// NVIDIA, tfjs-node-gpu, the route auto would take), whether a TF.js native package is installed,
// and initBackend's choice on this machine. One process for all, as a process costs about a second
// to start: each describe block below keeps its state to itself. backend-select checks the first
// choice of each backend in a process (the line it logs, the answer it caches), so no other block
// in this file may call initBackend.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { registeredDrivers, vulkanProblem } from '../../src/backend/webgpu/vulkan.ts';
import { diagnoseVulkan, findDriverLibrary, webgpuReport, type WebgpuReport } from '../../src/backend/webgpu/probe.ts';
import {
  gpusFromDriverFiles,
  nvidiaReport,
  type NvidiaReport,
  parseDriverVersion,
  parseNvidiaSmi,
  tensorflowGpuReport,
  type TensorflowGpuReport,
} from '../../src/backend/cuda-devices.ts';
import { autoRoute } from '../../src/backend/gpu-report.ts';
import type { AdapterDescription } from '../../src/backend/webgpu/adapters.ts';
import { fakeAdapter } from '../helpers/adapters.ts';
import { nativePackageState, unavailableReason } from '../../src/backend/tfjs-node-install.ts';
import { tf } from '../../src/util/tf.ts';
import { BackendUnavailableError, initBackend } from '../../src/backend/index.ts';
import { tempDir } from '../helpers/temp-dir.ts';

describe('backend-gpu-probe: what the GPU probe reports', () => {
  /** The report where no tfjs-node-gpu package is installed. */
  const ABSENT_TFJS_NODE_GPU: TensorflowGpuReport = {
    package: '@tensorflow/tfjs-node-gpu',
    state: 'absent',
    why: 'tfjs-node-gpu not installed',
    libtensorflow: null,
    cudaVisibleDevices: null,
    cudaDeviceOrder: null,
  };

  // The diagnosis behind `medvae gpus`, on fake folders: which Vulkan drivers the loader would load
  // and why none, what looks wrong with them, the NVIDIA GPUs from nvidia-smi or the driver's files,
  // tfjs-node-gpu's install state, and which route `--backend auto` takes.

  let root: string;
  before(() => {
    root = tempDir('medvae-gpu-probe-');
  });
  let n = 0;
  /** A fresh folder under the test's temporary root. */
  function folder(name: string): string {
    const dir = join(root, `${n++}-${name}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  function manifest(dir: string, file: string, library: string): string {
    const path = join(dir, file);
    writeFileSync(path, JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: library, api_version: '1.3.0' } }));
    return path;
  }

  const linuxOnly = process.platform === 'linux' ? undefined : 'vulkanProblem only diagnoses Linux';

  test('registeredDrivers: the standard folders, or only what VK_DRIVER_FILES names (files and folders), plus VK_ADD_DRIVER_FILES', () => {
    const icd = folder('icd.d');
    const radeon = manifest(icd, 'radeon_icd.x86_64.json', 'libvulkan_radeon.so');
    writeFileSync(join(icd, 'broken.json'), '{ not json');
    writeFileSync(join(icd, 'README'), 'not a manifest');
    assert.deepEqual(registeredDrivers({}, [icd, join(root, 'absent')]), [{ manifest: radeon, library: 'libvulkan_radeon.so' }]);

    const own = folder('own');
    const nvidia = manifest(own, 'nvidia_icd.json', 'libEGL_nvidia.so.0');
    const extra = folder('extra');
    const lvp = manifest(extra, 'lvp_icd.json', 'libvulkan_lvp.so');
    // The variable replaces the folders; a folder in it stands for its manifests.
    assert.deepEqual(
      registeredDrivers({ VK_DRIVER_FILES: own }, [icd]).map((d) => d.manifest),
      [nvidia],
    );
    // VK_DRIVER_FILES wins over the older VK_ICD_FILENAMES, as in the loader.
    assert.deepEqual(
      registeredDrivers({ VK_DRIVER_FILES: nvidia, VK_ICD_FILENAMES: radeon }, [icd]).map((d) => d.manifest),
      [nvidia],
    );
    assert.deepEqual(
      registeredDrivers({ VK_ADD_DRIVER_FILES: lvp }, [icd]).map((d) => d.manifest),
      [lvp, radeon],
    );
  });

  test('vulkanProblem: no loader, a wrong driver variable, no driver with and without an NVIDIA kernel driver', { skip: linuxOnly }, () => {
    const loaderDir = folder('lib');
    const icd = folder('icd.d');
    const paths = { loaderDirs: [loaderDir], icdDirs: [icd], nvidiaVersionFile: join(root, 'no-nvidia') };
    assert.match(vulkanProblem({}, paths) ?? '', /^no Vulkan loader \(libvulkan\.so\.1\)/);
    writeFileSync(join(loaderDir, 'libvulkan.so.1'), '');
    assert.match(vulkanProblem({}, paths) ?? '', /mesa-vulkan-drivers for AMD and Intel/);
    const version = join(folder('proc'), 'version');
    writeFileSync(version, 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n');
    assert.match(vulkanProblem({}, { ...paths, nvidiaVersionFile: version }) ?? '', /NVIDIA_DRIVER_CAPABILITIES including 'graphics'/);
    const missing = join(root, 'missing.json');
    assert.equal(
      vulkanProblem({ VK_ICD_FILENAMES: missing }, paths),
      `no Vulkan driver registered: VK_ICD_FILENAMES=${missing} names no readable driver manifest (a JSON file with ICD.library_path); fix or unset it`,
    );
    manifest(icd, 'intel_icd.json', 'libvulkan_intel.so');
    assert.equal(vulkanProblem({}, paths), undefined);
  });

  test('findDriverLibrary resolves as the loader does: absolute, relative to the manifest, or a bare name on the search path', () => {
    const dir = folder('chromium');
    const lib = join(dir, 'libvk_swiftshader.so');
    writeFileSync(lib, '');
    const json = join(dir, 'vk_swiftshader_icd.json');
    assert.equal(findDriverLibrary(json, './libvk_swiftshader.so', {}, []), lib);
    assert.equal(findDriverLibrary(json, lib, {}, []), lib);
    assert.equal(findDriverLibrary(json, join(dir, 'absent.so'), {}, []), null);
    assert.equal(findDriverLibrary(json, 'libvk_swiftshader.so', {}, []), null);
    assert.equal(findDriverLibrary(json, 'libvk_swiftshader.so', { LD_LIBRARY_PATH: `/nowhere:${dir}` }, []), lib);
    assert.equal(findDriverLibrary(json, 'libvk_swiftshader.so', {}, [dir]), lib);
  });

  test('diagnoseVulkan names what looks wrong: a missing driver library, a container without graphics, GLX without X libraries', () => {
    const icd = folder('icd.d');
    const libs = folder('libs');
    const loaderDir = folder('loader');
    writeFileSync(join(loaderDir, 'libvulkan.so.1'), '');
    const nvidia = manifest(icd, 'nvidia_icd.json', 'libGLX_nvidia.so.0');
    writeFileSync(join(libs, 'libGLX_nvidia.so.0'), '');
    const paths = { loaderDirs: [loaderDir], icdDirs: [icd], nvidiaVersionFile: join(root, 'no-nvidia') };

    const glx = diagnoseVulkan({ NVIDIA_DRIVER_CAPABILITIES: 'compute,utility' }, { paths, libraryDirs: [libs] });
    assert.deepEqual(glx.drivers, [{ manifest: nvidia, library: 'libGLX_nvidia.so.0', found: join(libs, 'libGLX_nvidia.so.0') }]);
    assert.equal(glx.loader, join(loaderDir, 'libvulkan.so.1'));
    assert.equal(glx.namedBy, null);
    assert.equal(glx.swiftshader, null);
    if (process.platform === 'linux') assert.equal(glx.problem, null);
    assert.equal(glx.hints.length, 2, glx.hints.join('\n'));
    assert.match(glx.hints[0]!, /NVIDIA_DRIVER_CAPABILITIES=compute,utility lacks 'graphics'/);
    assert.match(glx.hints[1]!, /needs X11 client libraries \(libXext\.so\.6\).*libEGL_nvidia\.so\.0/);

    // With the X libraries and the graphics capability, nothing to say.
    writeFileSync(join(libs, 'libXext.so.6'), '');
    assert.deepEqual(diagnoseVulkan({ NVIDIA_DRIVER_CAPABILITIES: 'compute,utility,graphics' }, { paths, libraryDirs: [libs] }).hints, []);
    assert.deepEqual(diagnoseVulkan({ NVIDIA_DRIVER_CAPABILITIES: 'all' }, { paths, libraryDirs: [libs] }).hints, []);

    // A manifest whose library is nowhere: the loader would skip it.
    const gone = manifest(icd, 'zz_gone.json', '/opt/gone/libvulkan_gone.so');
    const report = diagnoseVulkan({}, { paths, libraryDirs: [libs] });
    assert.deepEqual(
      report.drivers.map((d) => [d.manifest, d.found]),
      [
        [nvidia, join(libs, 'libGLX_nvidia.so.0')],
        [gone, null],
      ],
    );
    assert.match(report.hints[0]!, /zz_gone\.json names \/opt\/gone\/libvulkan_gone\.so, which is not in LD_LIBRARY_PATH/);
  });

  test('webgpuReport stops at the Vulkan problem without loading Dawn, and says why', { skip: linuxOnly }, async () => {
    const loaderDir = folder('loader');
    writeFileSync(join(loaderDir, 'libvulkan.so.1'), '');
    const paths = { loaderDirs: [loaderDir], icdDirs: [folder('icd.d')], nvidiaVersionFile: join(root, 'no-nvidia') };
    const env: NodeJS.ProcessEnv = {};
    const plain = await webgpuReport({ allowSoftware: false, env, paths });
    assert.deepEqual(plain.adapters, []);
    assert.match(plain.why ?? '', /^no Vulkan driver registered \(no manifest/);
    assert.equal(plain.webgpu, null);
    // Allowed a software adapter but none to be found: the reason says so, and nothing was added to the environment.
    const soft = await webgpuReport({ allowSoftware: true, env, paths, swiftshaderCandidates: [join(root, 'no-swiftshader.json')] });
    assert.match(soft.why ?? '', /no SwiftShader either \(install chromium/);
    assert.deepEqual(env, {});
  });

  test('NVIDIA: nvidia-smi CSV, the driver files when it is absent, and the kernel module version', () => {
    const csv = [
      '0, NVIDIA H100 80GB HBM3, 00000000:19:00.0, GPU-aaaa, 81559',
      '1, NVIDIA H100 80GB HBM3, 00000000:3B:00.0, GPU-bbbb, 81559',
      'No devices were found',
    ].join('\n');
    assert.deepEqual(parseNvidiaSmi(csv), [
      { index: 0, name: 'NVIDIA H100 80GB HBM3', bus: '0000:19:00.0', uuid: 'GPU-aaaa', memoryMiB: 81559 },
      { index: 1, name: 'NVIDIA H100 80GB HBM3', bus: '0000:3b:00.0', uuid: 'GPU-bbbb', memoryMiB: 81559 },
    ]);
    assert.equal(
      parseDriverVersion('NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024'),
      '550.54.15',
    );
    assert.equal(parseDriverVersion('NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  535.104.05  Release Build'), '535.104.05');
    assert.equal(parseDriverVersion('something else'), null);

    const gpus = folder('gpus');
    for (const [bus, model, uuid] of [
      ['0000:c1:00.0', 'NVIDIA A100-SXM4-80GB', 'GPU-2222'],
      ['0000:41:00.0', 'NVIDIA A100-SXM4-80GB', 'GPU-1111'],
    ]) {
      mkdirSync(join(gpus, bus!));
      writeFileSync(
        join(gpus, bus!, 'information'),
        `Model: \t\t ${model}\nIRQ:   \t\t 100\nGPU UUID: \t ${uuid}\nBus Type: \t PCIe\nBus Location: \t ${bus}\nDevice Minor: \t 0\n`,
      );
    }
    // Numbered in bus order, as nvidia-smi does.
    assert.deepEqual(gpusFromDriverFiles(gpus), [
      { index: 0, name: 'NVIDIA A100-SXM4-80GB', bus: '0000:41:00.0', uuid: 'GPU-1111', memoryMiB: null },
      { index: 1, name: 'NVIDIA A100-SXM4-80GB', bus: '0000:c1:00.0', uuid: 'GPU-2222', memoryMiB: null },
    ]);
    assert.deepEqual(gpusFromDriverFiles(join(root, 'absent')), []);

    const version = join(folder('proc'), 'version');
    writeFileSync(version, 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5\n');
    const withoutSmi = nvidiaReport({ versionFile: version, gpusDir: gpus, nvidiaSmi: join(root, 'no-nvidia-smi') });
    assert.equal(withoutSmi.driver, '550.54.15');
    assert.equal(withoutSmi.source, 'driver files');
    assert.equal(withoutSmi.gpus.length, 2);

    // A fake nvidia-smi that answers the query: its list wins.
    const smi = join(folder('bin'), 'nvidia-smi');
    writeFileSync(smi, `#!/bin/sh\nprintf '%s\\n' '0, NVIDIA L4, 00000000:01:00.0, GPU-cccc, 23034'\n`);
    chmodSync(smi, 0o755);
    const withSmi = nvidiaReport({ versionFile: version, gpusDir: gpus, nvidiaSmi: smi });
    assert.equal(withSmi.source, 'nvidia-smi');
    assert.deepEqual(
      withSmi.gpus.map((g) => g.name),
      ['NVIDIA L4'],
    );
    assert.deepEqual(nvidiaReport({ versionFile: join(root, 'none'), gpusDir: join(root, 'none'), nvidiaSmi: join(root, 'none') }), {
      driver: null,
      source: null,
      gpus: [],
    });
  });

  test('tfjs-node-gpu: absent, installed without binding nor libtensorflow, installed; CUDA_VISIBLE_DEVICES as given', () => {
    const app = folder('app');
    const from = pathToFileURL(join(app, 'app.js')).href;
    assert.deepEqual(tensorflowGpuReport({}, from), ABSENT_TFJS_NODE_GPU);
    const pkg = join(app, 'node_modules', '@tensorflow', 'tfjs-node-gpu');
    mkdirSync(join(pkg, 'lib', 'napi-v8'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-node-gpu', main: 'dist/index.js' }));
    const noBinding = tensorflowGpuReport({ CUDA_VISIBLE_DEVICES: '' }, from);
    assert.equal(noBinding.state, 'no-binding');
    assert.match(noBinding.why ?? '', /without its native binding.*; libtensorflow was not downloaded either$/);
    assert.equal(noBinding.cudaVisibleDevices, '', 'an empty CUDA_VISIBLE_DEVICES (every device hidden) is shown, not dropped');
    mkdirSync(join(pkg, 'deps', 'lib'), { recursive: true });
    writeFileSync(join(pkg, 'deps', 'lib', 'libtensorflow.so.2'), '');
    writeFileSync(join(pkg, 'lib', 'napi-v8', 'tfjs_binding.node'), '');
    const installed = tensorflowGpuReport({ CUDA_VISIBLE_DEVICES: '1', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' }, from);
    assert.deepEqual(
      [installed.state, installed.why, installed.libtensorflow, installed.cudaVisibleDevices, installed.cudaDeviceOrder],
      ['installed', null, join(pkg, 'deps', 'lib', 'libtensorflow.so.2'), '1', 'PCI_BUS_ID'],
    );
  });

  function webgpu(adapters: AdapterDescription[], auto: WebgpuReport['auto'], why: string | null = null): WebgpuReport {
    return {
      packages: { webgpu: '0.6.2', '@tensorflow/tfjs-backend-webgpu': '4.22.0' },
      vulkan: null,
      why,
      adapters,
      gpuIndex: 0,
      webgpu: auto,
      auto,
    };
  }

  test("autoRoute follows initBackend's order: tfjs-node-gpu, then a hardware WebGPU adapter, else the CPU backends", () => {
    const absent = ABSENT_TFJS_NODE_GPU;
    const noNvidia: NvidiaReport = { driver: null, source: null, gpus: [] };
    const gpu = fakeAdapter({ name: 'NVIDIA H100 80GB HBM3' });
    const hardware = webgpu([gpu], { index: 0, name: gpu.name, note: 'GPU 0 of 1' });
    assert.deepEqual(autoRoute(absent, noNvidia, hardware), {
      route: 'webgpu',
      adapter: { index: 0, name: gpu.name },
      why: 'tfjs-node-gpu not installed; WebGPU GPU 0 of 1',
    });
    const installed = { ...absent, state: 'installed' as const, why: null, cudaVisibleDevices: '0' };
    const nvidia: NvidiaReport = {
      driver: '550.54.15',
      source: 'nvidia-smi',
      gpus: [{ index: 0, name: gpu.name, bus: '0000:19:00.0', uuid: null, memoryMiB: 81559 }],
    };
    const cuda = autoRoute(installed, nvidia, hardware);
    assert.equal(cuda.route, 'cuda');
    assert.match(cuda.why, /CUDA_VISIBLE_DEVICES=0.*1 NVIDIA GPU\(s\) listed by nvidia-smi/);
    const software = webgpu([fakeAdapter({ software: true })], { error: 'WebGPU found only a software adapter' });
    const none = autoRoute(absent, noNvidia, software);
    assert.equal(none.route, 'none');
    assert.match(
      none.why,
      /only a software adapter \(SwiftShader Device \(Subzero\)\), which auto never takes; auto continues with the CPU backends/,
    );
    const noAdapter = autoRoute(absent, noNvidia, webgpu([], null, 'webgpu not installed'));
    assert.equal(
      noAdapter.why,
      'tfjs-node-gpu not installed; webgpu: webgpu not installed; auto continues with the CPU backends (tfjs-node, native, wasm)',
    );
  });
});

describe('backend-tfjs-node-install: a TF.js native package without its binding', () => {
  // A TF.js native package present without its binding (install script skipped or failed offline)
  // counts as no backend: auto and medvae-dist must not try to load it or place workers on GPUs.

  test('absent, present without its native binding, and installed are told apart from the files', () => {
    const root = mkdtempSync(join(tmpdir(), 'medvae-tfjs-node-'));
    try {
      const from = pathToFileURL(join(root, 'app.js')).href;
      assert.equal(nativePackageState('@tensorflow/tfjs-node-gpu', from), 'absent');
      const pkg = join(root, 'node_modules', '@tensorflow', 'tfjs-node-gpu');
      mkdirSync(join(pkg, 'lib', 'napi-v8'), { recursive: true });
      writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-node-gpu', main: 'dist/index.js' }));
      assert.equal(nativePackageState('@tensorflow/tfjs-node-gpu', from), 'no-binding');
      writeFileSync(join(pkg, 'lib', 'napi-v8', 'tfjs_binding.node'), '');
      assert.equal(nativePackageState('@tensorflow/tfjs-node-gpu', from), 'installed');
      assert.equal(nativePackageState('@tensorflow/tfjs-node', from), 'absent');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("backend-select: initBackend's choice on this machine", () => {
  // Backend selection on this machine, where the optional TF.js native packages cannot load.

  function installed(pkg: string): boolean {
    try {
      createRequire(import.meta.url).resolve(pkg);
      return true;
    } catch {
      return false;
    }
  }

  const nativeInstalled =
    nativePackageState('@tensorflow/tfjs-node') === 'installed' || nativePackageState('@tensorflow/tfjs-node-gpu') === 'installed';
  // onnxruntime-node (an optionalDependency) makes auto pick 'native' ahead of wasm.
  const ortInstalled = installed('onnxruntime-node');
  // What auto says of the two TF.js native packages here (absent, or present without their binding).
  const tfjsNodeReasons = `${unavailableReason('@tensorflow/tfjs-node-gpu', 'tfjs-node-gpu')}; ${unavailableReason('@tensorflow/tfjs-node', 'tfjs-node')}`;

  test(
    nativeInstalled
      ? 'auto without tfjs-node (skipped: tfjs-node is installed here)'
      : 'auto picks native (or wasm without onnxruntime-node) and logs why the others were skipped',
    { skip: nativeInstalled },
    async () => {
      const lines: string[] = [];
      const info = await initBackend('auto', (line) => lines.push(line));
      // Between the two TF.js packages, the gist of why webgpu found no GPU (which depends on the machine).
      const [gpuReason, nodeReason] = tfjsNodeReasons.split('; ');
      const literal = (text = ''): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const skipped = `${literal(gpuReason)}; webgpu: [^;()]+; ${literal(nodeReason)}`;
      if (ortInstalled) {
        const threads = info.threads ?? 0;
        assert.equal(info.name, 'native');
        assert.equal(info.gpu, false);
        assert.ok(threads >= 1);
        assert.match(info.reason, new RegExp(`^onnxruntime-node, ${threads} threads?; ${skipped}$`));
      } else {
        assert.equal(info.name, 'wasm');
        assert.match(info.reason, new RegExp(`^${skipped}; onnxruntime-node not installed$`));
      }
      assert.deepEqual(lines, [`backend: ${info.name} (${info.reason})`]);
      // native computes on TF.js's wasm backend
      assert.equal(tf.getBackend(), 'wasm');
      // the training kernels came with it
      assert.ok(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm'));
      assert.ok(tf.getKernel(tf.UnsortedSegmentSum, 'wasm'));

      const again = await initBackend('auto', (line) => lines.push(line));
      assert.deepEqual(again, info);
      assert.equal(lines.length, 1, 'a repeated call does not log again');
    },
  );

  test(
    nativeInstalled
      ? 'explicit tensorflow fails (skipped: tfjs-node is installed here)'
      : 'explicit tensorflow throws a clear error naming what is missing',
    { skip: nativeInstalled },
    async () => {
      const before = tf.getBackend();
      await assert.rejects(initBackend('tensorflow'), (e: unknown) => {
        assert.ok(e instanceof BackendUnavailableError);
        assert.equal(e.requested, 'tensorflow');
        assert.match(e.message, /^backend 'tensorflow' is not available: /);
        assert.ok(e.message.includes(tfjsNodeReasons), e.message);
        assert.match(e.message, /Install @tensorflow\/tfjs-node/);
        return true;
      });
      assert.equal(tf.getBackend(), before, 'a failed choice leaves the active backend alone');
      // not cached as a success: it fails again
      await assert.rejects(initBackend('tensorflow'), BackendUnavailableError);
    },
  );

  test('explicit cpu and wasm switch the active backend; returning to a choice re-activates it', async () => {
    const lines: string[] = [];
    const cpu = await initBackend('cpu', (line) => lines.push(line));
    assert.deepEqual(cpu, { name: 'cpu', gpu: false, reason: 'requested' });
    assert.equal(tf.getBackend(), 'cpu');
    const wasm = await initBackend('wasm', (line) => lines.push(line));
    assert.deepEqual(wasm, { name: 'wasm', gpu: false, reason: 'requested' });
    assert.equal(tf.getBackend(), 'wasm');
    assert.deepEqual(lines, ['backend: cpu (requested)', 'backend: wasm (requested)']);
    await initBackend('cpu');
    assert.equal(tf.getBackend(), 'cpu', 'the cached cpu choice is made active again');
    assert.equal(lines.length, 2);
  });
});
