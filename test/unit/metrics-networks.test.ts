// Each optimizer group's objective reaches Prometheus as medvae_loss{network=<group>,term="objective"}:
// scraped over HTTP from the endpoint of a real (tiny) training run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { train } from '../../src/train/trainer.ts';
import type { StepInfo } from '../../src/train/step-record.ts';
import { metricsHooks } from '../../src/train/metrics-hooks.ts';
import { TrainingMetrics } from '../../src/metrics/registry.ts';
import { startMetricsServer } from '../../src/metrics/server.ts';
import type { Progress } from '../../src/run/progress.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir('medvae-networks-');
const data = join(dir, 'tiny.npz');
writeTinyNpz(data, { train: 16, val: 8, test: 8 });
const quiet: Progress = { info: () => {}, step: () => {}, done: () => {} };

/** medvae_loss{network,term} values of a Prometheus text scrape. */
function lossGauges(scrape: string): Map<string, number> {
  const gauges = new Map<string, number>();
  for (const m of scrape.matchAll(/^medvae_loss\{[^}]*network="([^"]+)",term="([^"]+)"\} (\S+)$/gm))
    gauges.set(`${m[1]}/${m[2]}`, Number(m[3]));
  return gauges;
}

async function scrapedRun(name: string): Promise<{ during: Map<string, number>; after: Map<string, number>; last: StepInfo }> {
  const config = loadConfig({
    file: 'configs/smoke.yaml',
    sets: [
      `model.name=${name}`,
      `data.path=${data}`,
      'model.image_size=16',
      'train.batch_size=8',
      'train.max_steps=3',
      'train.backend=wasm',
      'model.feature_layer=1',
      'output.sample_grid=4',
    ],
  });
  const metrics = new TrainingMetrics({ rank: 0 });
  // Port 0 here is an ephemeral port (the CLI's --metrics-port 0 means no endpoint).
  const server = await startMetricsServer({ port: 0, collect: () => metrics.metrics(), contentType: metrics.contentType });
  const hooks = metricsHooks(metrics);
  let duringScrape: Promise<string> | undefined;
  let last: StepInfo | undefined;
  try {
    await train({
      config,
      runDir: join(dir, name),
      progress: quiet,
      hooks: {
        ...hooks,
        onStep: (info) => {
          hooks.onStep!(info);
          last = info;
          // Answered while training goes on (the loop awaits its reads between steps).
          if (info.step === 1) duringScrape = fetch(`http://127.0.0.1:${server.port}/metrics`).then((r) => r.text());
        },
      },
    });
    const after = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    return { during: lossGauges(await duringScrape!), after: lossGauges(after), last: last! };
  } finally {
    await server.close();
  }
}

test('VAE-GAN: the encoder, decoder and discriminator objectives are scraped apart, as the last step computed them', async () => {
  const { during, after, last } = await scrapedRun('vae_gan');
  for (const network of ['encoder', 'decoder', 'discriminator']) {
    assert.ok(during.has(`${network}/objective`), `scrape during the run: ${[...during.keys()].join(', ')}`);
    const value = after.get(`${network}/objective`)!;
    assert.ok(Number.isFinite(value), `${network}: ${value}`);
    assert.ok(
      Math.abs(value - last.objectives[network]!) <= 1e-6 * Math.max(1, Math.abs(value)),
      `${network}: ${value} vs ${last.objectives[network]}`,
    );
  }
  // Three different games: the discriminator's objective is not the encoder's.
  assert.notEqual(after.get('discriminator/objective'), after.get('encoder/objective'));
});

test("Vanilla VAE: its one group's objective is its loss", async () => {
  const { after } = await scrapedRun('vae');
  const objective = after.get('model/objective')!;
  const loss = after.get('all/loss')!;
  assert.ok(Number.isFinite(loss));
  assert.ok(Math.abs(objective - loss) <= 1e-5 * Math.abs(loss), `objective ${objective} vs loss ${loss}`);
});
