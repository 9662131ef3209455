// Metrics: the /metrics endpoint (routing, failures of collect, clients that must not hold it up);
// cluster/'s Prometheus config, alert rules and dashboard (promtool passes them, and every metric
// and label they query is really exported); a real Prometheus scraping in-process registries (a
// trainer-like loop and an agent merging two workers; promtool lints a live scrape); and a real
// Prometheus scraping real training runs (`medvae train` and a 2-worker `medvae-dist`). One process
// for all, as a process costs about a second to start: each describe block below keeps its hooks,
// servers and state to itself; every metrics object lives in its own registry.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { Registry } from 'prom-client';
import { parse, stringify } from 'yaml';
import { AgentMetrics } from '../../src/metrics/aggregate.ts';
import { TrainingMetrics } from '../../src/metrics/registry.ts';
import { MetricsServerError, serveMetrics, startMetricsServer } from '../../src/metrics/server.ts';
import type { MetricsServer } from '../../src/metrics/server.ts';
import { freePort, prometheusBinary, promtoolBinary, runPromtool, startPrometheus } from '../helpers/prometheus.ts';
import type { RunningPrometheus } from '../helpers/prometheus.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';

const noPromtool = promtoolBinary === undefined ? 'promtool not installed (Debian package prometheus)' : undefined;

// metrics-server
const EXPOSITION = '# HELP x_total test\n# TYPE x_total counter\nx_total 1\n';

/** Resolves when the server closes the socket, with what it sent before. */
function closedBy(socket: Socket): Promise<string> {
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  return new Promise((resolve) => socket.on('close', () => resolve(received)));
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
}

describe('metrics-server: the /metrics endpoint', () => {
  describe('startMetricsServer', () => {
    const servers: MetricsServer[] = [];
    const logs: string[] = [];
    after(() => Promise.all(servers.map((server) => server.close())));
    const start = async (collect: () => Promise<string>, socketTimeoutMs?: number): Promise<string> => {
      const server = await startMetricsServer({
        port: 0,
        collect,
        log: (message) => logs.push(message),
        collectTimeoutMs: 300,
        socketTimeoutMs,
      });
      servers.push(server);
      assert.ok(server.port > 0);
      return `http://127.0.0.1:${server.port}`;
    };

    it('serves GET and HEAD /metrics only', async () => {
      const base = await start(async () => EXPOSITION);
      const get = await fetch(`${base}/metrics?ignored=1`);
      assert.equal(get.status, 200);
      assert.equal(get.headers.get('content-type'), Registry.PROMETHEUS_CONTENT_TYPE);
      assert.equal(await get.text(), EXPOSITION);
      const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), '');
      const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get('allow'), 'GET, HEAD');
      assert.equal((await fetch(`${base}/`)).status, 404);
      assert.equal((await fetch(`${base}/metrics/extra`)).status, 404);
    });

    it('answers 500 when collect fails and 503 when it hangs, and says so in the log', async () => {
      const failing = await start(async () => {
        throw new Error('registry exploded');
      });
      const failed = await fetch(`${failing}/metrics`);
      assert.equal(failed.status, 500);
      assert.match(await failed.text(), /registry exploded/);
      const hanging = await start(() => new Promise<string>(() => {}));
      const began = Date.now();
      const timedOut = await fetch(`${hanging}/metrics`);
      assert.equal(timedOut.status, 503);
      assert.ok(Date.now() - began < 2000);
      assert.ok(logs.some((line) => /registry exploded/.test(line)));
      assert.ok(logs.some((line) => /took over 300 ms/.test(line)));
    });

    it('scrapes promptly while a silent client and a garbage client are connected, and drops both', { timeout: 15000 }, async () => {
      const base = await start(async () => EXPOSITION, 2000);
      const port = Number(new URL(base).port);
      const silent = await openSocket(port);
      const silentClosed = closedBy(silent);
      const garbage = await openSocket(port);
      const garbageClosed = closedBy(garbage);
      garbage.write('\x00\x01 definitely not HTTP\r\n\r\n');
      // A client that sends half a request line and stalls.
      const stalled = await openSocket(port);
      const stalledClosed = closedBy(stalled);
      stalled.write('GET /metr');

      const began = Date.now();
      const response = await fetch(`${base}/metrics`);
      assert.equal(await response.text(), EXPOSITION);
      // Served while the silent and stalled clients still hold their connections, not after them.
      assert.ok(Date.now() - began < 1500, `scrape took ${Date.now() - began} ms`);
      assert.ok(!silent.destroyed && !stalled.destroyed);

      assert.match(await garbageClosed, /^HTTP\/1\.1 400/);
      const dropped = Date.now();
      const [silentGot, stalledGot] = await Promise.all([silentClosed, stalledClosed]);
      // Whichever deadline comes first: the idle timeout closes silently, the headers deadline answers 408.
      for (const got of [silentGot, stalledGot]) assert.ok(got === '' || got.startsWith('HTTP/1.1 408 '), got);
      // Closed by the server's 2 s socket timeout (deadlines checked every second), not by the test.
      assert.ok(Date.now() - dropped < 5000, `idle sockets closed after ${Date.now() - dropped} ms`);
    });
  });

  describe('serveMetrics', () => {
    it('is off for port 0 and serves a TrainingMetrics otherwise', async () => {
      const metrics = new TrainingMetrics({ defaultMetrics: false });
      assert.equal(await serveMetrics(0, '127.0.0.1', metrics), undefined);
      const port = await freePort();
      const server = await serveMetrics(port, '127.0.0.1', metrics);
      assert.ok(server !== undefined);
      try {
        assert.equal(server.port, port);
        metrics.stepDone({ step: 1, images: 4, stepSeconds: 0.1, dataWaitSeconds: 0, losses: {}, learningRates: {} });
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        assert.match(text, /^medvae_train_steps_total 1$/m);
        // The port is taken now: a second server says which port and what to do.
        await assert.rejects(
          serveMetrics(port, '127.0.0.1', metrics),
          (error: Error) =>
            error instanceof MetricsServerError && error.message.includes(`127.0.0.1:${port}`) && /EADDRINUSE/.test(error.message),
        );
      } finally {
        await server.close();
      }
      await assert.rejects(
        startMetricsServer({ port: 70000, collect: async () => '' }),
        /port must be an integer in 0\.\.65535, got 70000/,
      );
    });
  });
});

// metrics-cluster
const CLUSTER = new URL('../../cluster/', import.meta.url).pathname;
const skipPromtool = noPromtool ?? false;
/** A test name that says why it is skipped, when it is. */
const needsPromtool = (name: string): string => (noPromtool ? `${name} (skipped: ${noPromtool})` : name);

interface Dashboard {
  panels: { title: string; targets?: { expr: string }[] }[];
  templating: { list: { name: string; definition?: string }[] };
}
interface RuleFile {
  groups: { rules: { alert?: string; record?: string; expr: string }[] }[];
}

/** Metric names a PromQL expression selects (functions, keywords, labels and numbers excluded). */
function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const keywords = new Set(['and', 'or', 'unless', 'bool', 'offset', 'Inf', 'NaN', 'by', 'without']);
  const names: string[] = [];
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const before = stripped[match.index - 1] ?? ' ';
    if (/[0-9.]/.test(before)) continue; // the exponent of a number such as 1e-9
    if (
      stripped
        .slice(match.index + match[0].length)
        .trimStart()
        .startsWith('(')
    )
      continue; // a function
    if (!keywords.has(match[0])) names.push(match[0]);
  }
  return names;
}

/** Label names an expression matches on or groups by. */
function labelNamesIn(expr: string): string[] {
  const labels: string[] = [];
  for (const [, matchers] of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const [, label] of matchers.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) labels.push(label);
  }
  for (const [, list] of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
    labels.push(
      ...list
        .split(',')
        .map((label) => label.trim())
        .filter((label) => label !== ''),
    );
  }
  return labels;
}

/** Sample names and label names of a live scrape of an agent merging two busy workers. */
async function liveScrape(): Promise<{ samples: Set<string>; labels: Set<string> }> {
  const workers = [new TrainingMetrics({ rank: 0 }), new TrainingMetrics({ rank: 1 })];
  const agent = new AgentMetrics();
  for (const worker of workers) {
    worker.stepDone({
      step: 1,
      images: 4,
      stepSeconds: 0.1,
      dataWaitSeconds: 0.01,
      losses: { vae: { objective: 1 } },
      learningRates: { vae: 0.001 },
    });
    worker.epochDone(1);
    worker.allReduceDone(0.01, 100, 0.002);
    worker.tensorMemory({ numTensors: 3, numBytes: 30 });
    worker.checkpointSaved(1_700_000_000);
    worker.divergence('explosion');
    agent.workerUp(worker.rank, 'cpu', true);
    agent.workerSnapshot(worker.rank, await worker.snapshot());
  }
  agent.restart();
  const server = await startMetricsServer({ port: 0, collect: () => agent.metrics() });
  try {
    const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    const samples = new Set<string>();
    const labels = new Set<string>();
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      samples.add(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0]);
      for (const [, label] of line.matchAll(/[{,]([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(label);
    }
    return { samples, labels };
  } finally {
    await server.close();
  }
}

async function dashboardExpressions(): Promise<{ where: string; expr: string }[]> {
  const dashboard = JSON.parse(await readFile(join(CLUSTER, 'grafana-dashboard.json'), 'utf8')) as Dashboard;
  const exprs = dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ where: `panel "${panel.title}"`, expr: target.expr })),
  );
  for (const variable of dashboard.templating.list) {
    const labelValues = /^label_values\(([^,]+),\s*([^)]+)\)$/.exec(variable.definition ?? '');
    // label_values(metric, label) is Grafana's, not PromQL: check it as the selector `metric` grouped by `label`.
    if (labelValues) exprs.push({ where: `variable $${variable.name}`, expr: `count by (${labelValues[2]}) (${labelValues[1]})` });
  }
  return exprs;
}

async function alertExpressions(): Promise<{ where: string; expr: string }[]> {
  const rules = parse(await readFile(join(CLUSTER, 'alerts.yml'), 'utf8')) as RuleFile;
  return rules.groups.flatMap((group) => group.rules.map((rule) => ({ where: `alert ${rule.alert ?? rule.record}`, expr: rule.expr })));
}

describe('metrics-cluster: cluster/ files', () => {
  it('the metric name extractor finds names and skips functions, labels and numbers', () => {
    assert.deepEqual(metricNamesIn('histogram_quantile(0.9, sum by (job, le) (rate(a_bucket{job=~"$job"}[$__rate_interval])))'), [
      'a_bucket',
    ]);
    assert.deepEqual(metricNamesIn('time() - max by (job) (b{x="y"} > 1e-9) or c != c'), ['b', 'c', 'c']);
    assert.deepEqual(labelNamesIn('sum without (rank) (a{job=~"x",term!="kld"})'), ['job', 'term', 'rank']);
  });

  it('dashboard and alerts use only metrics and labels the code exports', async () => {
    const { samples, labels } = await liveScrape();
    // Sanity: the scrape holds the histogram series and the per-rank labels the panels need.
    for (const name of ['medvae_train_step_duration_seconds_bucket', 'medvae_allreduce_bytes_total', 'medvae_worker_up'])
      assert.ok(samples.has(name), name);
    const generatedByPrometheus = new Set(['up']);
    const allowedLabels = new Set([...labels, 'job', 'instance']);
    const expressions = [...(await dashboardExpressions()), ...(await alertExpressions())];
    assert.ok(expressions.length >= 20, `only ${expressions.length} expressions found`);
    for (const { where, expr } of expressions) {
      const names = metricNamesIn(expr);
      assert.ok(names.length > 0, `${where}: no metric in ${expr}`);
      for (const name of names)
        assert.ok(samples.has(name) || generatedByPrometheus.has(name), `${where}: ${name} is not exported (${expr})`);
      for (const label of labelNamesIn(expr)) assert.ok(allowedLabels.has(label), `${where}: label ${label} is not exported (${expr})`);
    }
  });

  it(needsPromtool('every dashboard query is valid PromQL (promtool check rules)'), { skip: skipPromtool }, async () => {
    const exprs = await dashboardExpressions();
    const rules = {
      groups: [
        {
          name: 'dashboard',
          rules: exprs.map(({ expr }, index) => ({
            record: `dashboard:query_${index}`,
            expr: expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', '.*'),
          })),
        },
      ],
    };
    const dir = await mkdtemp(join(tmpdir(), 'medvae-dashboard-'));
    try {
      const file = join(dir, 'dashboard-rules.yml');
      await writeFile(file, stringify(rules));
      const result = await runPromtool(['check', 'rules', file]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, new RegExp(`SUCCESS: ${exprs.length} rules found`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it(needsPromtool('prometheus.yml passes promtool check config (with its rule file)'), { skip: skipPromtool }, async () => {
    const result = await runPromtool(['check', 'config', join(CLUSTER, 'prometheus.yml')]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /SUCCESS: 1 rule files found/);
  });

  it(needsPromtool('alerts.yml passes promtool check rules and its unit tests'), { skip: skipPromtool }, async () => {
    const check = await runPromtool(['check', 'rules', join(CLUSTER, 'alerts.yml')]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /SUCCESS: 6 rules found/);
    const unit = await runPromtool(['test', 'rules', join(CLUSTER, 'alerts.test.yml')]);
    assert.equal(unit.code, 0, unit.stdout + unit.stderr);
    assert.match(unit.stdout, /SUCCESS/);
  });
});

// metrics-prometheus
/** One fake optimizer step with values a trainer could report; loss falls with the step; kld may have diverged. */
function fakeStep(metrics: TrainingMetrics, step: number, lossOffset = 0, kld = 0.5): void {
  metrics.stepDone({
    step,
    images: 8,
    stepSeconds: 0.05,
    dataWaitSeconds: 0.002,
    losses: { vae: { objective: 2 / step + lossOffset, reconstruction: 1 / step + lossOffset, kld } },
    learningRates: { vae: 0.005 },
  });
  metrics.allReduceDone(0.004, 4096, 0.001);
  metrics.tensorMemory({ numTensors: 40 + step, numBytes: 1000 * step });
}

const serve = (collect: () => Promise<string>): Promise<MetricsServer> => startMetricsServer({ port: 0, collect });

const noPrometheus = prometheusBinary === undefined ? 'prometheus binary not installed (Debian package prometheus)' : undefined;

describe(
  `metrics-prometheus: metrics scraped by a real Prometheus${noPrometheus ? ` (skipped: ${noPrometheus})` : ''}`,
  { skip: noPrometheus ?? false },
  () => {
    const single = new TrainingMetrics();
    const workers = [new TrainingMetrics({ rank: 0 }), new TrainingMetrics({ rank: 1 })];
    const agent = new AgentMetrics();
    const servers: MetricsServer[] = [];
    let prometheus: RunningPrometheus | undefined;
    let trainerLoop: NodeJS.Timeout | undefined;

    before(async () => {
      single.workerUp(0, 'cpu', true);
      let step = 0;
      fakeStep(single, ++step);
      trainerLoop = setInterval(() => fakeStep(single, ++step), 100);
      // Two workers in lock-step: 5 steps of 8 images each, rank 1's losses 1 higher and its kld NaN.
      for (let s = 1; s <= 5; s++) workers.forEach((worker, rank) => fakeStep(worker, s, rank, rank === 1 ? Number.NaN : 0.5));
      for (const worker of workers) agent.workerUp(worker.rank, `cpu:${worker.rank}`, true);
      for (const worker of workers) agent.workerSnapshot(worker.rank, await worker.snapshot());

      servers.push(await serve(() => single.metrics()), await serve(() => agent.metrics()));
      const [train, dist] = servers.map((server) => `127.0.0.1:${server.port}`);
      // Scrapes a second apart: rate() over 5 s below needs samples that span its window, and the
      // stand-in trainer here costs nothing while the test waits.
      prometheus = await startPrometheus({
        jobs: [
          { job: 'train', targets: [train] },
          { job: 'dist', targets: [dist] },
        ],
        scrapeIntervalMs: 1000,
      });
      await prometheus.waitForScrapes('train', 2);
      await prometheus.waitForScrapes('dist', 2);
    });

    after(async () => {
      clearInterval(trainerLoop);
      await prometheus?.stop();
      await Promise.all(servers.map((server) => server.close()));
    });

    it('sees medvae_train_steps_total increase', async () => {
      const first = await prometheus!.query('medvae_train_steps_total{job="train"}');
      assert.equal(first.length, 1);
      assert.ok(first[0].value >= 1);
      await prometheus!.waitFor(
        'medvae_train_steps_total{job="train"}',
        ([sample]) => sample !== undefined && sample.value > first[0].value,
      );
      const rate = await prometheus!.waitFor('rate(medvae_train_images_total{job="train"}[5s])');
      // 8 images every ~100 ms: about 80 images/s (timers on a busy machine run late, never early).
      assert.ok(rate[0].value > 10 && rate[0].value <= 100, `images rate ${rate[0].value}`);
    });

    it('stores finite loss gauges per network and term', async () => {
      const losses = await prometheus!.query('medvae_loss{job="train"}');
      assert.deepEqual(losses.map((sample) => sample.metric.term).sort(), ['kld', 'objective', 'reconstruction']);
      for (const sample of losses) {
        assert.equal(sample.metric.network, 'vae');
        assert.equal(sample.metric.rank, '0');
        assert.ok(Number.isFinite(sample.value) && sample.value > 0, `${JSON.stringify(sample)}`);
      }
      const [kld] = await prometheus!.query('medvae_loss{job="train",term="kld"}');
      assert.equal(kld.value, 0.5);
    });

    it('keeps both ranks of the merged registry apart and combines the global counters', async () => {
      const objective = await prometheus!.query('medvae_loss{job="dist",term="objective"}');
      const byRank = Object.fromEntries(objective.map((sample) => [sample.metric.rank, sample.value]));
      // Step 5: 2/5 for rank 0, 2/5 + 1 for rank 1.
      assert.deepEqual(byRank, { '0': 0.4, '1': 1.4 });
      // The NaN loss arrives as NaN: the MedvaeLossNaN alert's test (x != x) finds it and nothing else.
      const nan = await prometheus!.query('medvae_loss{job="dist"} != medvae_loss{job="dist"}');
      assert.deepEqual(
        nan.map((sample) => [sample.metric.rank, sample.metric.term, Number.isNaN(sample.value)]),
        [['1', 'kld', true]],
      );
      const up = await prometheus!.query('medvae_worker_up{job="dist"}');
      assert.deepEqual(up.map((sample) => [sample.metric.rank, sample.metric.device, sample.value]).sort(), [
        ['0', 'cpu:0', 1],
        ['1', 'cpu:1', 1],
      ]);
      // Lock-step workers: steps are the max (5), images the sum (2 workers x 5 steps x 8).
      assert.equal((await prometheus!.query('medvae_train_steps_total{job="dist"}'))[0].value, 5);
      assert.equal((await prometheus!.query('medvae_train_images_total{job="dist"}'))[0].value, 80);
      const stepCounts = await prometheus!.query('medvae_train_step_duration_seconds_count{job="dist"}');
      assert.deepEqual(stepCounts.map((sample) => [sample.metric.rank, sample.value]).sort(), [
        ['0', 5],
        ['1', 5],
      ]);
      const quantile = await prometheus!.query(
        'histogram_quantile(0.5, sum by (le) (medvae_train_step_duration_seconds_bucket{job="dist"}))',
      );
      // All 10 steps took 0.05 s, in the (0.025, 0.05] bucket: the median interpolates to its middle.
      assert.ok(Math.abs(quantile[0].value - 0.0375) < 1e-9, `median ${quantile[0].value}`);
    });

    it(
      `passes promtool check metrics on a live scrape with no lint problem${noPromtool ? ` (skipped: ${noPromtool})` : ''}`,
      { skip: noPromtool ?? false },
      async () => {
        for (const server of servers) {
          const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
          assert.match(text, /medvae_train_steps_total/);
          const result = await runPromtool(['check', 'metrics'], text);
          assert.deepEqual(result, { code: 0, stdout: '', stderr: '' });
        }
      },
    );
  },
);

// metrics-training
const ROOT = join(import.meta.dirname, '..', '..');
const skip =
  prometheusBinary && promtoolBinary
    ? false
    : 'skipped: Debian prometheus/promtool not installed (.ci/install-system-deps.sh installs them)';

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

describe('metrics-training: a real Prometheus scrapes real training runs', () => {
  let dir: string;
  let data: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'medvae-prom-'));
    data = join(dir, 'tiny.npz');
    writeTinyNpz(data, { train: 48, val: 8, test: 8 });
  });
  // medvae-dist's workers outlive its SIGKILLed agent for a moment and may still be writing a
  // checkpoint: rmSync retries a folder that fills up again while it empties it.
  after(() => rmSync(dir, { recursive: true, force: true, maxRetries: 10 }));

  async function training(bin: string, args: string[], port: number): Promise<ChildProcess> {
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'bin', bin),
        ...args,
        '--config',
        'configs/smoke.yaml',
        '--data',
        data,
        '--epochs',
        '500',
        '--backend',
        'wasm',
        '--log-format',
        'plain',
        '--metrics-port',
        String(port),
        '--out',
        join(dir, `${bin}-${port}`),
      ],
      { cwd: ROOT, stdio: 'ignore' },
    );
    // The endpoint answers once the process is up.
    for (let i = 0; i < 200; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/metrics`)).ok) return child;
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    child.kill('SIGKILL');
    throw new Error(`${bin} never served metrics on ${port}`);
  }

  /**
   * The training and a Prometheus scraping it, started side by side (its first scrapes
   * of a target not yet up count as failed ones), so that the training computes for less time before
   * the checks. Either failing to start stops the other.
   */
  async function trainingAndPrometheus(bin: string, args: string[], port: number, job: string): Promise<[ChildProcess, RunningPrometheus]> {
    const [child, prom] = await Promise.allSettled([
      training(bin, args, port),
      startPrometheus({ jobs: [{ job, targets: [`127.0.0.1:${port}`] }] }),
    ]);
    if (child.status === 'fulfilled' && prom.status === 'fulfilled') return [child.value, prom.value];
    if (child.status === 'fulfilled') await stop(child.value);
    if (prom.status === 'fulfilled') await prom.value.stop();
    throw child.status === 'rejected' ? child.reason : (prom as PromiseRejectedResult).reason;
  }

  test(
    'medvae train: Prometheus scrapes steps that increase and finite loss gauges; promtool finds no lint problems',
    { skip },
    async () => {
      const port = await freePort();
      const [child, prom] = await trainingAndPrometheus('medvae.js', ['train'], port, 'medvae');
      try {
        // Two scrapes that saw the step count move: no separate wait for scrapes, each second of which
        // the training spends computing.
        const first = await prom.waitFor('medvae_train_steps_total', (s) => s.length === 1 && s[0]!.value > 0, 60_000);
        const later = await prom.waitFor('medvae_train_steps_total', (s) => s.length === 1 && s[0]!.value > first[0]!.value, 60_000);
        assert.ok(later[0]!.value > first[0]!.value);
        const losses = await prom.waitFor('medvae_loss{term="loss"}', undefined, 30_000);
        assert.ok(
          losses.every((s) => Number.isFinite(s.value)),
          JSON.stringify(losses),
        );
        const scrape = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const lint = await runPromtool(['check', 'metrics'], scrape);
        assert.equal(lint.code, 0, lint.stdout + lint.stderr);
        assert.equal((lint.stdout + lint.stderr).trim(), '');
      } finally {
        await prom.stop();
        await stop(child);
      }
    },
  );

  test('medvae-dist --cpu-workers 2: one endpoint on the agent shows both ranks', { skip }, async () => {
    const port = await freePort();
    const [child, prom] = await trainingAndPrometheus('medvae-dist.js', ['--cpu-workers', '2'], port, 'medvae-dist');
    try {
      const ranks = await prom.waitFor('medvae_loss{term="loss"}', (s) => new Set(s.map((x) => x.metric.rank)).size === 2, 90_000);
      assert.deepEqual([...new Set(ranks.map((s) => s.metric.rank))].sort(), ['0', '1']);
      assert.ok(ranks.every((s) => Number.isFinite(s.value)));
      const up = await prom.waitFor('medvae_worker_up == 1', (s) => s.length === 2, 30_000);
      assert.deepEqual(up.map((s) => s.metric.rank).sort(), ['0', '1']);
      const first = await prom.waitFor('medvae_train_steps_total', (s) => s.length === 1 && s[0]!.value > 0, 60_000);
      await prom.waitFor('medvae_train_steps_total', (s) => s.length === 1 && s[0]!.value > first[0]!.value, 60_000);
      const scrape = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const lint = await runPromtool(['check', 'metrics'], scrape);
      assert.equal(lint.code, 0, lint.stdout + lint.stderr);
    } finally {
      await prom.stop();
      await stop(child);
    }
  });
});
