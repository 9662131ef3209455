// Progress of a long restoration run on stderr: at most one line every few seconds, with ETA.
export interface Counter {
  advance(images: number): void;
  done(): void;
}

export function createCounter(label: string, total: number, log: ((line: string) => void) | undefined, everyMs = 5000): Counter {
  const started = Date.now();
  let done = 0;
  let last = started;
  const line = (): string => {
    const seconds = (Date.now() - started) / 1000;
    const rate = done / Math.max(seconds, 1e-3);
    const eta = rate > 0 ? (total - done) / rate : NaN;
    return `${label}: ${done}/${total} images, ${rate.toFixed(1)} img/s${done < total && Number.isFinite(eta) ? `, ETA ${Math.ceil(eta)}s` : ''}`;
  };
  return {
    advance(images) {
      done += images;
      const now = Date.now();
      if (log && now - last >= everyMs && done < total) {
        last = now;
        log(line());
      }
    },
    done() {
      log?.(`${line()} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
    },
  };
}
