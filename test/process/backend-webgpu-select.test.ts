// How the webgpu backend picks its adapter: Dawn's adapter list parsed, software adapters told
// apart, the i-th GPU for worker i, `auto` never on a software adapter, and SwiftShader found for
// `--allow-software-gpu` without an environment variable set by hand.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAdapterList } from '../../src/backend/webgpu/dawn.ts';
import { chooseAdapter, isSoftware } from '../../src/backend/webgpu/adapters.ts';
import { driPrimeTag, gpuPciAddresses } from '../../src/backend/webgpu/pci.ts';
import { addSwiftShader, findSwiftShader, registeredDrivers, vulkanProblem } from '../../src/backend/webgpu/vulkan.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { webgpuUnavailable } from '../helpers/webgpu.ts';
import { srcImport } from '../helpers/src-import.ts';
import { fakeAdapter } from '../helpers/adapters.ts';

const ROOT = join(import.meta.dirname, '..', '..');

test("Dawn's list of adapters is read from its answer to a name no device has", () => {
  const message = [
    "no adapter  with name '\u0001x' found",
    'Available adapters:',
    " * backend: 'vulkan', name: 'NVIDIA H100 80GB HBM3'",
    " * backend: 'vulkan', name: 'SwiftShader Device (Subzero)'",
  ].join('\n');
  assert.deepEqual(parseAdapterList(message), [
    { backend: 'vulkan', name: 'NVIDIA H100 80GB HBM3' },
    { backend: 'vulkan', name: 'SwiftShader Device (Subzero)' },
  ]);
  assert.deepEqual(parseAdapterList('no suitable backends found'), []);
});

test('software adapters are told apart from GPUs by WebGPU fallback flag or driver name', () => {
  const info = { vendor: '', architecture: '', device: '', description: '' };
  assert.equal(isSoftware({ ...info, isFallbackAdapter: true }, 'x'), true);
  for (const name of ['SwiftShader Device (Subzero)', 'llvmpipe (LLVM 15.0.6, 256 bits)', 'lavapipe', 'Microsoft Basic Render Driver'])
    assert.equal(isSoftware(info, name), true, name);
  for (const name of ['NVIDIA H100 80GB HBM3', 'AMD Radeon RX 7900 XTX (RADV NAVI31)', 'Intel(R) Arc(tm) A770 Graphics (DG2)', 'Apple M2'])
    assert.equal(isSoftware(info, name), false, name);
});

describe('chooseAdapter', () => {
  const gpus = [
    fakeAdapter({ index: 0, name: 'NVIDIA H100' }),
    fakeAdapter({ index: 1, name: 'SwiftShader Device (Subzero)', software: true }),
    fakeAdapter({ index: 2, name: 'AMD Radeon RX 7900' }),
  ];
  test('worker i gets the i-th hardware adapter; software ones are not counted', () => {
    assert.equal(chooseAdapter(gpus, 0, false).adapter.name, 'NVIDIA H100');
    assert.equal(chooseAdapter(gpus, 1, false).adapter.name, 'AMD Radeon RX 7900');
    assert.match(chooseAdapter(gpus, 1, true).note, /GPU 1 of 2/);
  });
  test('an index past the GPUs names the ones there are', () => {
    assert.throws(
      () => chooseAdapter(gpus, 2, false),
      /GPU 2 does not exist: WebGPU sees 2 GPU\(s\) \(0: NVIDIA H100; 1: AMD Radeon RX 7900\)/,
    );
  });
  test('a software adapter is taken only when allowed, and then by every worker', () => {
    const soft = [fakeAdapter({ index: 0, name: 'SwiftShader Device (Subzero)', software: true })];
    assert.throws(() => chooseAdapter(soft, 0, false), /only a software adapter \(SwiftShader Device \(Subzero\)\).*--allow-software-gpu/);
    assert.equal(chooseAdapter(soft, 0, true).adapter.name, 'SwiftShader Device (Subzero)');
    assert.match(chooseAdapter(soft, 1, true).note, /shared by GPU 1/);
  });
  test('two GPUs with one name: each is chosen with its rank among its twins, to be pinned by PCI address', () => {
    const twins = [
      fakeAdapter({ index: 0, name: 'NVIDIA H100' }),
      fakeAdapter({ index: 1, name: 'NVIDIA H100' }),
      fakeAdapter({ index: 2, name: 'NVIDIA L4' }),
    ];
    assert.deepEqual(chooseAdapter(twins, 0, false).twin, { rank: 0, count: 2 });
    assert.deepEqual(chooseAdapter(twins, 1, false).twin, { rank: 1, count: 2 });
    assert.equal(chooseAdapter(twins, 2, false).twin, undefined);
  });
});

test('GPUs by PCI address from sysfs: display and 3D controllers of the vendor, in address order; the DRI_PRIME tag of one', () => {
  const root = tempDir('medvae-pci-');
  const device = (address: string, vendor: string, cls: string): void => {
    mkdirSync(join(root, address));
    writeFileSync(join(root, address, 'vendor'), `${vendor}\n`);
    writeFileSync(join(root, address, 'class'), `${cls}\n`);
  };
  device('0000:c1:00.0', '0x10de', '0x030200');
  device('0000:41:00.0', '0x10de', '0x030200');
  device('0000:03:00.0', '0x10de', '0x030000');
  device('0000:42:00.0', '0x10de', '0x040300'); // the GPU's audio function
  device('0000:01:00.0', '0x1002', '0x030000');
  device('0000:00:1f.3', '0x8086', '0x040300');
  assert.deepEqual(gpuPciAddresses('nvidia', root), ['0000:03:00.0', '0000:41:00.0', '0000:c1:00.0']);
  assert.deepEqual(gpuPciAddresses('amd', root), ['0000:01:00.0']);
  assert.deepEqual(gpuPciAddresses('intel', root), []);
  assert.deepEqual(gpuPciAddresses('apple', root), []);
  assert.deepEqual(gpuPciAddresses('nvidia', join(root, 'missing')), []);
  assert.equal(driPrimeTag('0000:41:00.0'), 'pci-0000_41_00_0!');
});

describe('Vulkan drivers, read from their manifests', () => {
  const dir = tempDir('medvae-vulkan-');
  const icd = join(dir, 'icd.d');
  mkdirSync(icd);
  writeFileSync(
    join(icd, 'nvidia_icd.json'),
    JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: 'libGLX_nvidia.so.0' } }),
  );
  writeFileSync(join(icd, 'broken.json'), '{');
  const swiftshader = join(dir, 'vk_swiftshader_icd.json');
  writeFileSync(swiftshader, JSON.stringify({ ICD: { library_path: './libvk_swiftshader.so' } }));

  test('the registered drivers are those the environment names, else the manifests in the standard folders', () => {
    assert.deepEqual(registeredDrivers({}, [icd, join(dir, 'missing')]), [
      { manifest: join(icd, 'nvidia_icd.json'), library: 'libGLX_nvidia.so.0' },
    ]);
    assert.deepEqual(
      registeredDrivers({ VK_ICD_FILENAMES: swiftshader }, [icd]).map((d) => d.library),
      ['./libvk_swiftshader.so'],
    );
  });
  test('SwiftShader is added to the drivers the user named, in both variables the loaders read', () => {
    const env: NodeJS.ProcessEnv = { VK_ICD_FILENAMES: '/opt/other.json' };
    assert.equal(findSwiftShader([join(dir, 'nope.json'), swiftshader]), swiftshader);
    assert.equal(addSwiftShader(env, [swiftshader]), swiftshader);
    assert.equal(env.VK_ICD_FILENAMES, `/opt/other.json:${swiftshader}`);
    assert.equal(env.VK_DRIVER_FILES, env.VK_ICD_FILENAMES);
    assert.equal(addSwiftShader({}, [join(dir, 'nope.json')]), undefined);
  });
  test('no driver registered is named as the problem', { skip: process.platform !== 'linux' && 'Vulkan is read only on Linux' }, () => {
    const problem = vulkanProblem({ VK_ICD_FILENAMES: join(dir, 'nope.json') });
    // Without a loader the loader is the problem; with one, the missing driver.
    assert.match(problem ?? '', /no Vulkan loader|no Vulkan driver registered/);
  });
});

function withoutDriverVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out.VK_ICD_FILENAMES;
  delete out.VK_DRIVER_FILES;
  return out;
}

/**
 * Starts backends in a fresh process, one after another as commands would, and returns the start-up
 * line or error of each.
 */
function backendLines(attempts: { choice: string; allowSoftwareGpu: boolean }[], env: Record<string, string> = {}): string[] {
  const { execArgv, specifier } = srcImport('backend/index');
  const script = `import { initBackend } from '${specifier}';
const lines = [];
for (const { choice, allowSoftwareGpu } of ${JSON.stringify(attempts)}) {
  try { await initBackend(choice, (l) => lines.push(l), { allowSoftwareGpu }); }
  catch (e) { lines.push('error: ' + e.message); }
}
console.log(JSON.stringify(lines));`;
  const r = spawnSync(process.execPath, [...execArgv, '--input-type=module', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...withoutDriverVariables(process.env), ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  // The last line: whatever else the process prints comes before it.
  const lines = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as string[];
  assert.equal(lines.length, attempts.length, r.stdout);
  return lines;
}

describe('on this machine (SwiftShader from chromium)', async () => {
  const skip = await webgpuUnavailable();
  /**
   * With SwiftShader registered by the environment, one process: --backend webgpu without
   * --allow-software-gpu (which starts nothing), then auto allowing one.
   */
  let registered: { refused: string; auto: string };
  before(() => {
    if (skip) return;
    const [refused, auto] = backendLines(
      [
        { choice: 'webgpu', allowSoftwareGpu: false },
        { choice: 'auto', allowSoftwareGpu: true },
      ],
      { VK_ICD_FILENAMES: findSwiftShader()! },
    );
    registered = { refused: refused!, auto: auto! };
  });
  test('--allow-software-gpu finds SwiftShader with no variable set by hand, and says so', { skip }, () => {
    const [line] = backendLines([{ choice: 'webgpu', allowSoftwareGpu: true }]);
    assert.match(
      line!,
      /^backend: webgpu \(gpu\) \(SwiftShader Device \(Subzero\) \(google swiftshader, vulkan, .*software\), software adapter allowed by --allow-software-gpu/,
    );
  });
  test('auto never chooses a software adapter, even one the environment registers', { skip }, () => {
    assert.doesNotMatch(registered.auto, /^backend: webgpu/);
    assert.match(registered.auto, /webgpu: WebGPU found only a software adapter[;)]/);
  });
  test('--backend webgpu without --allow-software-gpu refuses the software adapter in one line', { skip }, () => {
    assert.match(
      registered.refused,
      /^error: backend 'webgpu' is not available: webgpu: WebGPU found only a software adapter .*--allow-software-gpu/,
    );
  });
});
