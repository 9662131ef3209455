// What a training process does around its training, for medvae train and medvae-dist's launcher
// alike: Ctrl-C and SIGTERM, and the metrics endpoint. Loads no TF.js, so the launcher, which
// never computes, starts without it.
import type { ExperimentConfig } from '../config/schema.ts';
import type { Progress } from '../run/progress.ts';
import type { MetricsSource } from '../metrics/registry.ts';
import type { MetricsServer } from '../metrics/server.ts';
import { EXIT_INTERRUPTED } from './errors.ts';

/**
 * First Ctrl-C or SIGTERM: finish the step, save a checkpoint, exit 128 + the signal (see
 * reportInterrupted); the signal's name is the abort reason. A second one: stop at once.
 */
export function interruptSignal(onFirst: () => void): AbortSignal {
  const controller = new AbortController();
  for (const name of ['SIGINT', 'SIGTERM'] as const) {
    process.on(name, () => {
      if (controller.signal.aborted) process.exit(EXIT_INTERRUPTED[name]);
      onFirst();
      controller.abort(name);
    });
  }
  return controller.signal;
}

/** An interrupted run ends with its checkpoint and the exact command that continues it; exit 130 (Ctrl-C) or 143 (SIGTERM). */
export function reportInterrupted(progress: Progress, signal: AbortSignal, step: number, checkpoint: string, resumeCommand: string): void {
  progress.info(`interrupted at step ${step}; checkpoint ${checkpoint || '(none)'}; continue with: ${resumeCommand}`);
  process.exitCode = signal.reason === 'SIGTERM' ? EXIT_INTERRUPTED.SIGTERM : EXIT_INTERRUPTED.SIGINT;
}

/** A busy metrics port must not cost a training run: warn and train without the endpoint. */
export async function startMetricsOrWarn(
  config: ExperimentConfig,
  source: MetricsSource,
  progress: Progress,
): Promise<MetricsServer | undefined> {
  const { metrics_port: port, metrics_host: host } = config.output;
  // Loaded here, at its one use: prom-client is no cost to a command line that is refused before training.
  const { serveMetrics } = await import('../metrics/server.ts');
  try {
    const server = await serveMetrics(port, host, source, (m) => progress.info(m));
    if (server) progress.info(`metrics: http://${host}:${server.port}/metrics`);
    return server;
  } catch (e) {
    progress.info(
      `warning: metrics endpoint not started on ${host}:${port} (${(e as Error).message}); training continues without it (choose another with --metrics-port)`,
    );
    return undefined;
  }
}
