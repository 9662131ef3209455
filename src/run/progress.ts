// What a person (or a log collector) sees while training runs: a live bar on a terminal, plain
// periodic lines when output is a file or pipe, one JSON object per line with --log-format json.

export type LogFormat = 'auto' | 'tty' | 'plain' | 'json';

/** Positions count from 0 here; every output (the line, the bar, JSON) shows them from 1. */
export interface StepReport {
  epoch: number;
  epochs: number;
  stepInEpoch: number;
  stepsPerEpoch: number;
  step: number;
  totalSteps: number;
  terms: Record<string, number>;
  imagesPerSecond: number;
  lr: number;
}

export interface Progress {
  /** A free-form message (backend chosen, checkpoint saved, warnings). */
  info(message: string): void;
  step(report: StepReport): void;
  /** Ends a live bar's line so that later output starts on a fresh line. */
  done(): void;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}

function formatTerms(terms: Record<string, number>): string {
  return Object.entries(terms)
    .map(([k, v]) => `${k} ${Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toFixed(4)}`)
    .join(' ');
}

export function createProgress(
  format: LogFormat,
  opts: { everySteps: number; stream?: NodeJS.WriteStream } = { everySteps: 10 },
): Progress {
  const out = opts.stream ?? process.stderr;
  const mode = format === 'auto' ? (out.isTTY ? 'tty' : 'plain') : format;
  let barOpen = false;
  const startedAt = Date.now();
  let firstStep = -1;

  const eta = (r: StepReport): number => {
    if (firstStep < 0) firstStep = r.step;
    const done = r.step - firstStep + 1;
    const elapsed = (Date.now() - startedAt) / 1000;
    return (elapsed / done) * (r.totalSteps - r.step - 1);
  };

  const endBar = (): void => {
    if (barOpen) out.write('\n');
    barOpen = false;
  };

  return {
    info(message) {
      if (mode === 'json') out.write(`${JSON.stringify({ level: 'info', time: new Date().toISOString(), message })}\n`);
      else {
        endBar();
        out.write(`${message}\n`);
      }
    },
    step(r) {
      const remaining = eta(r);
      if (mode === 'json') {
        // Counted from 1, as the plain line and metrics.jsonl count them.
        const counted = { ...r, epoch: r.epoch + 1, stepInEpoch: r.stepInEpoch + 1, step: r.step + 1 };
        if (r.step % opts.everySteps === 0)
          out.write(
            `${JSON.stringify({ level: 'info', time: new Date().toISOString(), event: 'step', ...counted, eta_s: Math.round(remaining) })}\n`,
          );
        return;
      }
      // Fixed-width facts first, loss terms last: a narrow terminal cuts the end of the line.
      const line = `epoch ${r.epoch + 1}/${r.epochs} step ${r.stepInEpoch + 1}/${r.stepsPerEpoch} | ETA ${formatSeconds(remaining)} | ${r.imagesPerSecond.toFixed(1)} img/s | lr ${r.lr.toExponential(2)} | ${formatTerms(r.terms)}`;
      if (mode === 'tty') {
        const width = 24;
        const filled = Math.round((width * (r.stepInEpoch + 1)) / r.stepsPerEpoch);
        const columns = out.columns ?? 120;
        out.write(`\r${`[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${line}`.slice(0, columns - 1)}`);
        out.write('\x1b[K');
        barOpen = true;
      } else if (r.step % opts.everySteps === 0 || r.stepInEpoch + 1 === r.stepsPerEpoch) {
        out.write(`${line}\n`);
      }
    },
    done: endBar,
  };
}
