// A small seeded mutation fuzzer. Each target runs for a bounded time (MEDVAE_FUZZ_SECONDS longer),
// every case must end accepted or in one of this project's named errors, and anything else fails
// with the seed, the case number and the input saved for replay.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Seconds per target: a few in npm test, MEDVAE_FUZZ_SECONDS for a longer run. */
export function fuzzSeconds(fallback: number): number {
  const env = Number(process.env.MEDVAE_FUZZ_SECONDS);
  return Number.isFinite(env) && env > 0 ? env : fallback;
}

/** mulberry32: a tiny, fast, reproducible generator. */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

const INTERESTING_U32 = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 1 << 20, 1 << 30];

/** One to a few byte-level mutations: flips, interesting values, cuts, duplications, insertions. */
export function mutate(rng: Rng, input: Uint8Array): Uint8Array {
  let out = Buffer.from(input);
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const at = out.length > 0 ? rng.int(out.length) : 0;
    switch (rng.int(7)) {
      case 0:
        if (out.length > 0) out[at] = out[at]! ^ (1 << rng.int(8));
        break;
      case 1:
        if (out.length > 0) out[at] = rng.pick([0, 0xff, 0x7f, 0x80, 0x20, 0x0a, 0x27, 0x2c]);
        break;
      case 2:
        if (out.length >= at + 4) out.writeUInt32LE(rng.pick(INTERESTING_U32) >>> 0, at);
        break;
      case 3:
        out = out.subarray(0, at);
        break;
      case 4: {
        const len = 1 + rng.int(Math.min(64, Math.max(1, out.length - at)));
        out = Buffer.concat([out.subarray(0, at), out.subarray(at, at + len), out.subarray(at)]);
        break;
      }
      case 5: {
        const junk = Buffer.alloc(1 + rng.int(16));
        for (let i = 0; i < junk.length; i++) junk[i] = rng.int(256);
        out = Buffer.concat([out.subarray(0, at), junk, out.subarray(at)]);
        break;
      }
      default: {
        const len = rng.int(Math.min(64, Math.max(1, out.length - at)));
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + len)]);
      }
    }
  }
  return out;
}

export interface FuzzTarget {
  name: string;
  seed: number;
  seconds: number;
  /** Valid inputs to mutate. */
  corpus: readonly Uint8Array[];
  /** Runs one case: resolves when accepted, throws when refused. */
  attempt(input: Uint8Array): Promise<void>;
  /** This project's refusals, by error class: what a case may end in besides acceptance. */
  named: readonly (abstract new (...args: never[]) => Error)[];
  /** A case slower than this counts as a hang. */
  maxCaseMs?: number;
  /** Resident memory above this counts as an unbounded allocation. */
  maxRssMb?: number;
}

export interface FuzzReport {
  target: string;
  seed: number;
  cases: number;
  seconds: number;
  /** How cases ended: 'accepted' or the error class's name. */
  outcomes: Record<string, number>;
  slowestCaseMs: number;
  peakRssMb: number;
}

export class FuzzFinding extends Error {
  override name = 'FuzzFinding';
}

export async function runFuzz(t: FuzzTarget): Promise<FuzzReport> {
  const rng = new Rng(t.seed);
  const outcomes: Record<string, number> = {};
  const started = performance.now();
  let cases = 0;
  let slowest = 0;
  let peakRss = 0;
  const fail = (input: Uint8Array, why: string): never => {
    const saved = join(tmpdir(), `medvae-fuzz-${t.name}-${t.seed}-${cases}.bin`);
    writeFileSync(saved, input);
    throw new FuzzFinding(`${t.name}, seed ${t.seed}, case ${cases}: ${why} (input saved to ${saved})`);
  };
  while (performance.now() - started < t.seconds * 1000 || cases < t.corpus.length) {
    // Every corpus entry once as it is, then mutants.
    const input = cases < t.corpus.length ? t.corpus[cases]! : mutate(rng, rng.pick(t.corpus));
    const caseStart = performance.now();
    let outcome = 'accepted';
    try {
      await t.attempt(input);
    } catch (e) {
      if (!t.named.some((cls) => e instanceof cls)) fail(input, `ended in an unnamed error: ${(e as Error)?.stack ?? String(e)}`);
      outcome = (e as Error).name;
    }
    const ms = performance.now() - caseStart;
    slowest = Math.max(slowest, ms);
    if (ms > (t.maxCaseMs ?? 2000)) fail(input, `took ${Math.round(ms)} ms (a hang)`);
    const rss = process.memoryUsage().rss / 2 ** 20;
    peakRss = Math.max(peakRss, rss);
    if (rss > (t.maxRssMb ?? 2048)) fail(input, `resident memory reached ${Math.round(rss)} MB (an unbounded allocation)`);
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    cases++;
  }
  return {
    target: t.name,
    seed: t.seed,
    cases,
    seconds: (performance.now() - started) / 1000,
    outcomes,
    slowestCaseMs: Math.round(slowest),
    peakRssMb: Math.round(peakRss),
  };
}
