// cluster/: the Prometheus config and alert rules pass promtool (including the alerts' unit
// tests), and every metric and label the dashboard and alerts query is really exported.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { AgentMetrics } from '../../src/metrics/aggregate.ts';
import { TrainingMetrics } from '../../src/metrics/registry.ts';
import { startMetricsServer } from '../../src/metrics/server.ts';
import { promtoolBinary, runPromtool } from '../helpers/prometheus.ts';

const CLUSTER = new URL('../../cluster/', import.meta.url).pathname;
const noPromtool = promtoolBinary === undefined ? 'promtool not installed (Debian package prometheus)' : undefined;
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

describe('cluster/ files', () => {
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
