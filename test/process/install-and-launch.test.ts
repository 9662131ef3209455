// Installing and launching medvae: cluster/kubernetes and cluster/slurm start medvae-dist as
// documented (the manifests hang together, every variable and flag they set is one the launcher
// reads); npm's install-script policy covers every package of the lock file with an install script;
// bench/gpu-doc.ts writes docs/gpu.md's "Measured" section from bench/gpu.sh's results, never
// counting a software adapter as a GPU; onnxruntime-node's internal binding, which the native
// backend is written against, is checked by shape, pinned by the lock file, and its absence said in
// one line. One process for all, as a process costs about a second to start: each describe block
// below keeps its state to itself.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { LAYOUT_ENV, resolveNodeLayout } from '../../src/launch/scheduler-env.ts';
import { TOKEN_ENV, TRANSPORT_ENV } from '../../src/collective/ring.ts';
import { TLS_ENV } from '../../src/collective/tls-link.ts';
import { loadConfig } from '../../src/config/load.ts';
import { checkBinding, loadBinding, NativeBindingError } from '../../src/backend/native/binding.ts';
import { encodeModel } from '../../src/backend/native/onnx-model.ts';
import { nativeUnavailable } from '../helpers/native.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const ROOT = join(import.meta.dirname, '..', '..');

describe('cluster-launch: the Kubernetes and Slurm files start medvae-dist as documented', () => {
  const LAUNCHER_ENV = new Set<string>([...LAYOUT_ENV, TOKEN_ENV, TRANSPORT_ENV, TLS_ENV]);
  /** Read by NVIDIA's container runtime, not the launcher: which driver libraries a container gets. */
  const CONTAINER_RUNTIME_ENV = new Set<string>(['NVIDIA_DRIVER_CAPABILITIES']);
  /** The backends whose `--gpus` workers compute on a GPU (webgpu, or auto's CUDA-then-WebGPU). */
  const GPU_BACKENDS = new Set(['auto', 'webgpu', 'tensorflow']);

  /** The value after a flag in an argument list, or undefined. */
  function flagValue(args: string[], flag: string): string | undefined {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  }

  /** WebGPU needs NVIDIA's 'graphics' libraries (the Vulkan driver) mounted: docs/gpu.md, "Containers". */
  function assertGraphicsCapability(value: string | undefined): void {
    assert.ok(value !== undefined, 'NVIDIA_DRIVER_CAPABILITIES is set');
    const caps = value.split(',');
    assert.ok(caps.includes('graphics') || caps.includes('all'), `${value} includes graphics (the Vulkan driver)`);
    assert.ok(caps.includes('compute') || caps.includes('all'), `${value} includes compute (CUDA)`);
  }

  let helpFlags: Set<string> | undefined;

  /** Every long flag `medvae-dist --help` lists (asked once for this block: a process costs about a second of CPU). */
  function launcherFlags(): Set<string> {
    if (!helpFlags) {
      const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'medvae-dist.js'), '--help'], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      helpFlags = new Set(r.stdout.match(/--[a-z][a-z-]*/g));
      assert.ok(helpFlags.has('--cpu-workers') && helpFlags.has('--config'), 'the help lists the launcher flags and train flags');
    }
    return helpFlags;
  }

  interface K8sObject {
    kind: string;
    metadata: { name: string; annotations?: Record<string, string> };
    spec: Record<string, unknown>;
    data?: Record<string, string>;
  }

  interface Container {
    command: string[];
    args: string[];
    env: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
    ports: { containerPort: number }[];
    volumeMounts: { name: string; mountPath: string }[];
    resources: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  }

  interface PodTemplate {
    metadata: { annotations: Record<string, string> };
    spec: {
      subdomain: string;
      restartPolicy: string;
      containers: Container[];
      volumes: { name: string; persistentVolumeClaim?: { claimName: string }; configMap?: { name: string } }[];
    };
  }

  test('Kubernetes: an Indexed Job behind a headless Service, config from a ConfigMap, runs on a PVC, the token from a Secret, scraped by annotation', () => {
    const docs = parseAllDocuments(readFileSync(join(ROOT, 'cluster/kubernetes/medvae-dist.yaml'), 'utf8')).map((d) => {
      assert.deepEqual(d.errors, []);
      return d.toJS() as K8sObject;
    });
    const byKind = (kind: string): K8sObject => {
      const found = docs.filter((d) => d.kind === kind);
      assert.equal(found.length, 1, `one ${kind}`);
      return found[0]!;
    };
    const job = byKind('Job');
    const service = byKind('Service');
    const configMap = byKind('ConfigMap');
    const pvc = byKind('PersistentVolumeClaim');
    assert.equal(job.spec.completionMode, 'Indexed');
    assert.equal(job.spec.parallelism, job.spec.completions, 'every node runs at once');
    assert.equal(service.spec.clusterIP, 'None', 'headless');
    assert.deepEqual(service.spec.selector, { 'batch.kubernetes.io/job-name': job.metadata.name });
    assert.deepEqual(pvc.spec.accessModes, ['ReadWriteMany'], 'every node mounts the run directory');

    const pod = job.spec.template as PodTemplate;
    assert.equal(pod.spec.subdomain, service.metadata.name);
    const [container] = pod.spec.containers;
    assert.ok(container);
    assert.deepEqual(container.command, ['npx', 'medvae-dist']);
    const env = new Map(container.env.map((e) => [e.name, e]));
    for (const name of env.keys())
      assert.ok(LAUNCHER_ENV.has(name) || CONTAINER_RUNTIME_ENV.has(name), `${name} is read by the launcher or the container runtime`);
    assert.equal(env.get('NNODES')?.value, String(job.spec.completions), 'NNODES = completions');
    assert.equal(env.get('MEDVAE_K8S_SERVICE')?.value, service.metadata.name);
    assert.ok(env.get(TOKEN_ENV)?.valueFrom?.secretKeyRef, 'the token comes from a Secret');
    const flags = launcherFlags();
    for (const arg of container.args.filter((a) => a.startsWith('--'))) assert.ok(flags.has(arg), `${arg} is a medvae-dist flag`);

    // One worker per GPU the pod is given, on a GPU backend, with the Vulkan driver mounted.
    const gpus = flagValue(container.args, '--gpus')?.split(',');
    assert.ok(gpus, 'the pod trains on GPUs (--gpus)');
    assert.deepEqual(
      gpus,
      Array.from({ length: gpus.length }, (_, i) => String(i)),
      'the GPUs the container sees, from 0',
    );
    assert.equal(Number(container.resources.limits?.['nvidia.com/gpu']), gpus.length, 'one GPU requested per --gpus index');
    assert.ok(GPU_BACKENDS.has(flagValue(container.args, '--backend') ?? ''), 'a backend that computes on the GPU');
    assert.equal(flagValue(container.args, '--cpu-workers'), undefined);
    assertGraphicsCapability(env.get('NVIDIA_DRIVER_CAPABILITIES')?.value);

    // What each pod would resolve: node rank from the index, node 0 at <job>-0.<service>.
    const podEnv = Object.fromEntries([...env].filter(([, e]) => e.value !== undefined).map(([k, e]) => [k, e.value]));
    const layout = resolveNodeLayout({}, { ...podEnv, JOB_COMPLETION_INDEX: '1', HOSTNAME: `${job.metadata.name}-1` });
    assert.deepEqual(
      [layout.nnodes, layout.nodeRank, layout.masterAddr, layout.scheduler],
      [2, 1, `${job.metadata.name}-0.${service.metadata.name}`, 'kubernetes'],
    );
    assert.ok(
      service.spec.ports && (service.spec.ports as { port: number }[]).some((p) => p.port === layout.masterPort),
      'the Service exposes the rendezvous port',
    );

    // Scraped by annotation on the port the agent serves metrics on.
    const annotations = pod.metadata.annotations;
    assert.equal(annotations['prometheus.io/scrape'], 'true');
    const metricsPort = container.args[container.args.indexOf('--metrics-port') + 1];
    assert.equal(annotations['prometheus.io/port'], metricsPort);
    assert.equal(container.args[container.args.indexOf('--metrics-host') + 1], '0.0.0.0', 'reachable from Prometheus');
    assert.ok(container.ports.some((p) => String(p.containerPort) === metricsPort));

    // The config and the run directory are mounted where the arguments point.
    const mountOf = (volume: string): string => container.volumeMounts.find((m) => m.name === volume)!.mountPath;
    const configVolume = pod.spec.volumes.find((v) => v.configMap?.name === configMap.metadata.name)!;
    const runsVolume = pod.spec.volumes.find((v) => v.persistentVolumeClaim?.claimName === pvc.metadata.name)!;
    const [configKey] = Object.keys(configMap.data!);
    assert.equal(container.args[container.args.indexOf('--config') + 1], `${mountOf(configVolume.name)}/${configKey}`);
    assert.ok(container.args[container.args.indexOf('--out') + 1]!.startsWith(`${mountOf(runsVolume.name)}/`));
  });

  test('Slurm: one agent per node, only launcher variables exported, only medvae-dist flags', () => {
    const script = readFileSync(join(ROOT, 'cluster/slurm/medvae-dist.sbatch'), 'utf8');
    assert.match(script, /^#SBATCH --ntasks-per-node=1$/m);
    assert.match(script, /srun --ntasks-per-node=1/);
    const exported = [...script.matchAll(/^export (\w+)/gm)].map((m) => m[1]!);
    assert.ok(exported.length > 0);
    for (const name of exported)
      assert.ok(LAUNCHER_ENV.has(name) || CONTAINER_RUNTIME_ENV.has(name), `${name} is read by the launcher or the container runtime`);
    assertGraphicsCapability(/^export NVIDIA_DRIVER_CAPABILITIES=(\S+)$/m.exec(script)?.[1]);
    const command = script
      .slice(script.indexOf('medvae-dist \\'))
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join(' ');
    const flags = launcherFlags();
    for (const flag of command.match(/--[a-z][a-z-]*/g) ?? []) assert.ok(flags.has(flag), `${flag} is a medvae-dist flag`);
    // One worker per GPU Slurm gives the node.
    const args = command.split(/\s+/);
    const gpus = flagValue(args, '--gpus')?.split(',');
    assert.ok(gpus, 'each node trains on its GPUs (--gpus)');
    assert.equal(Number(/^#SBATCH --gpus-per-node=(\d+)$/m.exec(script)?.[1]), gpus.length, '--gpus-per-node = the --gpus indices');
    assert.ok(GPU_BACKENDS.has(flagValue(args, '--backend') ?? ''), 'a backend that computes on the GPU');
    // What each task would resolve from what Slurm sets.
    const layout = resolveNodeLayout(
      {},
      {
        SLURM_JOB_ID: '7',
        SLURM_NODEID: '1',
        SLURM_PROCID: '1',
        SLURM_NNODES: '2',
        SLURM_JOB_NODELIST: 'gpu[03-04]',
        MASTER_PORT: '29500',
      },
    );
    assert.deepEqual([layout.nnodes, layout.nodeRank, layout.masterAddr], [2, 1, 'gpu03']);
    assert.equal(spawnSync('bash', ['-n', join(ROOT, 'cluster/slurm/medvae-dist.sbatch')]).status, 0, 'valid bash');
  });

  test("the ConfigMap's experiment loads as a config", () => {
    const docs = parseAllDocuments(readFileSync(join(ROOT, 'cluster/kubernetes/medvae-dist.yaml'), 'utf8')).map(
      (d) => d.toJS() as K8sObject,
    );
    const dir = mkdtempSync(join(tmpdir(), 'medvae-configmap-'));
    const file = join(dir, 'experiment.yaml');
    writeFileSync(file, docs.find((d) => d.kind === 'ConfigMap')!.data!['experiment.yaml']!);
    const cfg = loadConfig({ file });
    assert.equal(cfg.model.name, 'vae');
    assert.ok(cfg.output.checkpoint_every_steps > 0, 'restarts resume from recent steps');
    rmSync(dir, { recursive: true });
  });
});

describe('npm-install-scripts: every install script is allowed or denied by name', () => {
  const read = (f: string): Record<string, unknown> => JSON.parse(readFileSync(join(ROOT, f), 'utf8')) as Record<string, unknown>;

  test('every package of the lock file with an install script is allowed or denied by name', () => {
    const policy = read('package.json').allowScripts as Record<string, boolean>;
    const packages = read('package-lock.json').packages as Record<string, { hasInstallScript?: boolean }>;
    const withScripts = Object.entries(packages)
      .filter(([, p]) => p.hasInstallScript)
      .map(([path]) => path.replace(/^.*node_modules\//, ''));
    assert.ok(withScripts.length > 0);
    for (const name of withScripts) assert.equal(typeof policy[name], 'boolean', `${name} has an install script the policy does not cover`);
    // The native TF.js backends download libtensorflow in their install step: without it they cannot load.
    assert.equal(policy['@tensorflow/tfjs-node'], true);
    assert.equal(policy['@tensorflow/tfjs-node-gpu'], true);
  });

  test('npm itself finds no unreviewed install script in the installed tree', (t) => {
    const r = spawnSync('npm', ['approve-scripts', '--allow-scripts-pending'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0 && /Unknown command/i.test(r.stdout + r.stderr)) {
      t.skip(`this npm (${spawnSync('npm', ['-v'], { encoding: 'utf8' }).stdout.trim()}) has no install-script policy`);
      return;
    }
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /No packages with unreviewed install scripts/);
  });
});

describe('bench-gpu-doc: docs/gpu.md\'s "Measured" section from bench/gpu.sh\'s results', () => {
  let dir: string;
  before(() => {
    dir = tempDir('medvae-gpu-doc-');
  });

  /** The block gpu-doc.ts would write, from these lines (--dry-run: docs/gpu.md is not touched). */
  function block(lines: object[] | undefined, ...flags: string[]): string {
    const args = ['--import', 'tsx', join(ROOT, 'bench', 'gpu-doc.ts'), '--dry-run', ...flags];
    if (lines !== undefined) {
      const file = join(dir, `results-${Math.random().toString(36).slice(2)}.jsonl`);
      writeFileSync(file, `${lines.map((l) => JSON.stringify(l)).join('\n')}\nnot json: a log line\n`);
      args.push(file);
    }
    const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trimEnd();
  }

  const machine = { os: 'Linux 6.8.0 x64', cpus: 32, cpu_model: 'AMD EPYC 9354', memory_gb: 251.5, node: 'v20.20.2' };
  const report = {
    webgpu: {
      adapters: [0, 1].map((index) => ({
        index,
        backend: 'vulkan',
        name: `NVIDIA L4 #${index}`,
        vendor: 'nvidia',
        architecture: 'lovelace',
        device: '',
        driver: '550.54.15',
        software: false,
        limits: { maxBufferSize: 2 ** 32, maxStorageBufferBindingSize: 2 ** 31 },
      })),
      why: null,
    },
    nvidia: { driver: '550.54.15', source: 'nvidia-smi', gpus: [] },
    tensorflow: { state: 'absent', why: 'tfjs-node-gpu not installed' },
  };

  function run(commit: string, software: boolean, date: string): object[] {
    const stamp = { commit, host: 'gpu-box', software };
    return [
      { bench: 'meta', ...stamp, dirty: false, date, machine },
      { bench: 'gpus', ...stamp, date, report },
      {
        bench: 'step',
        ...stamp,
        key: 'step webgpu vae 64x64 batch 64',
        date,
        model: 'vae',
        image_size: 64,
        batch: 64,
        backend: 'webgpu',
        adapter: 'NVIDIA L4 #0',
        images_per_s: 1234.5,
        step_ms_median: 51.8,
        peak_rss_mb: 900,
        tensors_leaked: 0,
      },
      {
        bench: 'step',
        ...stamp,
        key: 'step webgpu vaegan 256x256 batch 16',
        date,
        model: 'vaegan',
        image_size: 256,
        batch: 16,
        backend: 'webgpu',
        error: 'Buffer size exceeds the limit | killed',
      },
      { bench: 'skip', ...stamp, key: 'step tensorflow vae 64x64 batch 64', why: 'tfjs-node-gpu not installed' },
      {
        bench: 'dist',
        ...stamp,
        key: 'dist 1',
        date,
        workers: 1,
        image_size: 64,
        global_batch: 64,
        images_per_s: 1000,
        step_ms_median: 64,
        allreduce_ms_median: 0,
      },
      {
        bench: 'dist',
        ...stamp,
        key: 'dist 2',
        date,
        workers: 2,
        image_size: 64,
        global_batch: 64,
        images_per_s: 1800,
        step_ms_median: 35.6,
        allreduce_ms_median: 4.25,
      },
    ];
  }

  test('no results, or only software ones: the page says plainly that nothing has run on a GPU, as docs/gpu.md does now', () => {
    const none = block(undefined);
    assert.match(none, /^\*\*Not measured on GPU hardware yet\.\*\*/);
    assert.equal(block(run('abc1234', true, '2026-12-06T10:00:00.000Z')), none, 'software lines are never GPU figures');
    const page = readFileSync(join(ROOT, 'docs', 'gpu.md'), 'utf8');
    const current = page.slice(
      page.indexOf('<!-- measured:start -->') + '<!-- measured:start -->'.length,
      page.indexOf('<!-- measured:end -->'),
    );
    assert.equal(current.trim(), none, 'docs/gpu.md holds what the generator writes with no results');
  });

  test('hardware results: the machine, commit and adapters, one row per case, failures and skips named, speed-up over one GPU', () => {
    const text = block([...run('old0000', false, '2026-12-01T10:00:00.000Z'), ...run('abc1234', false, '2026-12-06T10:00:00.000Z')]);
    assert.match(text, /^### gpu-box$/m);
    assert.match(text, /at commit abc1234 on 2026-12-06; Linux 6\.8\.0 x64, 32 × AMD EPYC 9354, 251\.5 GB, Node v20\.20\.2\./);
    assert.doesNotMatch(text, /old0000/, 'only the latest commit of a machine');
    assert.match(
      text,
      /WebGPU adapters: 0: NVIDIA L4 #0 \(nvidia, lovelace, vulkan, 550\.54\.15\); 1: NVIDIA L4 #1 .*NVIDIA driver 550\.54\.15; tfjs-node-gpu not installed\./,
    );
    assert.match(text, /^\| Vanilla VAE \| 64 \| 64 \| webgpu \| NVIDIA L4 #0 \| 1234\.50 \| 51\.8 \| 900 \| 0 \|$/m);
    assert.match(text, /^\| VAE-GAN \| 256 \| 16 \| webgpu \| \| failed: Buffer size exceeds the limit \/ killed \|/m);
    assert.match(text, /^\| 2 \| 64 \| 64 \| 1800\.00 \| 1\.80× \| 35\.6 \| 4\.25 \|$/m);
    assert.match(text, /^- step tensorflow vae 64x64 batch 64: tfjs-node-gpu not installed$/m);
    assert.doesNotMatch(text, /SOFTWARE/);
  });

  test('--include-software shows software results only under a heading that says they are not GPU figures', () => {
    const text = block(run('abc1234', true, '2026-12-06T10:00:00.000Z'), '--include-software');
    assert.match(text, /^### gpu-box — SOFTWARE ADAPTER, NOT GPU FIGURES$/m);
    assert.match(text, /^\| Vanilla VAE \| 64 \| 64 \| webgpu/m);
  });
});

describe("native-binding: onnxruntime-node's internal binding", () => {
  const HIDE = join(import.meta.dirname, '..', 'helpers', 'hide-onnxruntime.cjs');

  test('a binding of another shape is refused by name', () => {
    class Tensor {}
    const session = class {
      loadModel(): void {}
      run(): void {}
      dispose(): void {}
    };
    const cases: [unknown, RegExp][] = [
      [undefined, /dist\/binding exports nothing/],
      [{ binding: { InferenceSession: session } }, /no initOrt\(\)/],
      [{ initOrt: () => undefined }, /no binding object/],
      [{ initOrt: () => undefined, binding: {} }, /no binding\.InferenceSession constructor/],
      [
        {
          initOrt: () => undefined,
          binding: {
            InferenceSession: class {
              loadModel(): void {}
              dispose(): void {}
            },
          },
        },
        /InferenceSession has no run\(\)/,
      ],
    ];
    for (const [module, message] of cases) {
      assert.throws(
        () => checkBinding(module, Tensor, '9.9.9'),
        (e: unknown) => {
          assert.ok(e instanceof NativeBindingError);
          assert.match(e.message, /^onnxruntime-node 9\.9\.9: its internal binding has changed/);
          assert.match(e.message, message);
          assert.equal(e.missing, false);
          return true;
        },
      );
    }
    assert.ok(checkBinding({ initOrt: () => undefined, binding: { InferenceSession: session } }, Tensor, '9.9.9'));
  });

  test(
    'the installed onnxruntime-node is the version the lock file pins, and its binding has the expected shape',
    { skip: nativeUnavailable() },
    () => {
      const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
      const pinned = lock.packages['node_modules/onnxruntime-node']?.version;
      assert.ok(pinned, 'package-lock.json pins onnxruntime-node');
      const binding = loadBinding();
      assert.equal(binding.version, pinned);
      // A model built in code runs at once (synchronously) on views into one buffer, as tensors on the
      // wasm heap are, and writes a given output in place.
      const heap = new Float32Array(16);
      heap.set([1, 2, 3, 4], 2);
      heap.set([10, 20, 30, 40], 8);
      const session = binding.newSession();
      const bytes = encodeModel({
        inputs: [
          { name: 'a', shape: [2, 2] },
          { name: 'b', shape: [2, 2] },
        ],
        outputs: [{ name: 'y', shape: [2, 2] }],
        nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
      });
      session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        enableCpuMemArena: true,
        enableMemPattern: true,
        logSeverityLevel: 3,
        extra: {},
      });
      const output = heap.subarray(12, 16);
      session.run(
        { a: binding.tensor(heap.subarray(2, 6), [2, 2]), b: binding.tensor(heap.subarray(8, 12), [2, 2]) },
        { y: binding.tensor(output, [2, 2]) },
        {},
      );
      assert.deepEqual([...heap.subarray(12, 16)], [70, 100, 150, 220]);
      session.dispose();
    },
  );

  function medvae(args: string[]): { status: number | null; stderr: string } {
    const r = spawnSync(process.execPath, ['--require', HIDE, join(ROOT, 'bin', 'medvae.js'), ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { status: r.status, stderr: r.stderr };
  }

  test('without onnxruntime-node: --backend native is a one-line error saying how to get it', () => {
    const r = medvae(['train', '--config', 'configs/smoke.yaml', '--backend', 'native', '--max-steps', '1', '--log-format', 'plain']);
    assert.notEqual(r.status, 0);
    const lines = r.stderr.trim().split('\n');
    const line = lines.find((l) => l.includes("backend 'native'"));
    assert.ok(line, r.stderr);
    assert.match(line, /onnxruntime-node is not installed; install it with 'npm install onnxruntime-node'/);
  });

  test('without onnxruntime-node: auto says so in its one backend line and trains on wasm', () => {
    const probe = spawnSync(
      process.execPath,
      [
        '--require',
        HIDE,
        '--import',
        'tsx',
        '-e',
        "const { initBackend } = await import('./src/backend/index.ts'); await initBackend('auto', (l) => console.log(l));",
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(probe.status, 0, probe.stderr);
    assert.match(probe.stdout, /^backend: wasm \(.*onnxruntime-node not installed\)$/m);
  });
});
