// cluster/kubernetes and cluster/slurm start medvae-dist as documented: the manifests hang together
// (Indexed Job, headless Service, ConfigMap, PVC, Secret, scrape annotations), and every variable and
// flag they set is one the launcher reads.
import { test } from 'node:test';
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

const ROOT = join(import.meta.dirname, '..', '..');
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

/** Every long flag `medvae-dist --help` lists (asked once per file: a process costs about a second of CPU). */
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
    { SLURM_JOB_ID: '7', SLURM_NODEID: '1', SLURM_PROCID: '1', SLURM_NNODES: '2', SLURM_JOB_NODELIST: 'gpu[03-04]', MASTER_PORT: '29500' },
  );
  assert.deepEqual([layout.nnodes, layout.nodeRank, layout.masterAddr], [2, 1, 'gpu03']);
  assert.equal(spawnSync('bash', ['-n', join(ROOT, 'cluster/slurm/medvae-dist.sbatch')]).status, 0, 'valid bash');
});

test("the ConfigMap's experiment loads as a config", () => {
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'cluster/kubernetes/medvae-dist.yaml'), 'utf8')).map((d) => d.toJS() as K8sObject);
  const dir = mkdtempSync(join(tmpdir(), 'medvae-configmap-'));
  const file = join(dir, 'experiment.yaml');
  writeFileSync(file, docs.find((d) => d.kind === 'ConfigMap')!.data!['experiment.yaml']!);
  const cfg = loadConfig({ file });
  assert.equal(cfg.model.name, 'vae');
  assert.ok(cfg.output.checkpoint_every_steps > 0, 'restarts resume from recent steps');
  rmSync(dir, { recursive: true });
});
