// The ring on a thread of its own (src/collective/ring-thread.ts): the same results as
// the ring on the calling thread, progress while the calling thread is busy, and the ring's errors
// arriving as the same classes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Collective } from '../../src/collective/collective.ts';
import { DistConfigError, PeerError } from '../../src/collective/errors.ts';
import { listenForRing, type RingListener, type RingOptions } from '../../src/collective/ring.ts';
import { listenForRingOnThread } from '../../src/collective/ring-thread.ts';
import { expectedMean, makeGradients } from '../fixtures/dist-data.ts';
import { expectMismatchedTokensRefused } from '../helpers/ring-handshake.ts';

const SIZES = [1, 3001, 0, 7, 1023, 2500, 5];

async function formRing(
  worldSize: number,
  listen: (opts: RingOptions) => Promise<RingListener>,
  extra: Partial<RingOptions> = {},
): Promise<Collective[]> {
  const listeners = await Promise.all(
    Array.from({ length: worldSize }, (_, rank) =>
      listen({ rank, worldSize, log: () => undefined, bucketBytes: 4096, chunkBytes: 1024, ...extra }),
    ),
  );
  const peers = listeners.map((l) => ({ host: '127.0.0.1', port: l.port }));
  return Promise.all(listeners.map((l) => l.connect(peers)));
}

function inSharedMemory(buffers: Float32Array[]): Float32Array[] {
  return buffers.map((b) => {
    const shared = new Float32Array(new SharedArrayBuffer(b.byteLength));
    shared.set(b);
    return shared;
  });
}

/** Holds this thread for `ms` without giving its event loop a turn, as a long kernel does. */
function busyFor(ms: number): number {
  const until = performance.now() + ms;
  while (performance.now() < until);
  return performance.now();
}

describe('ring on its own thread', () => {
  it('gives the mean bit for bit as the ring on the calling thread does, in place in shared memory and copied back otherwise; once closed, refuses operations and its thread ends', async () => {
    const threaded = await formRing(3, listenForRingOnThread);
    const local = await formRing(3, listenForRing);
    try {
      assert.ok(threaded.every((c) => c.progressesInBackground) && local.every((c) => !c.progressesInBackground));
      const expected = expectedMean(4, 3, SIZES);
      const plain = threaded.map((c) => makeGradients(4, c.rank, SIZES));
      const shared = threaded.map((c) => inSharedMemory(makeGradients(4, c.rank, SIZES)));
      const reference = local.map((c) => makeGradients(4, c.rank, SIZES));
      await Promise.all(threaded.map((c, r) => c.allReduceMean(plain[r]!)));
      await Promise.all(threaded.map((c, r) => c.allReduceMean(shared[r]!)));
      await Promise.all(local.map((c, r) => c.allReduceMean(reference[r]!)));
      for (const results of [plain, shared]) {
        for (let r = 0; r < 3; r++) {
          results[r]!.forEach((values, v) => assert.deepEqual(values, reference[0]![v], `rank ${r}, variable ${v}`));
        }
      }
      expected.forEach((mean, v) =>
        mean.forEach((m, i) => assert.ok(Math.abs(plain[0]![v]![i]! - m) <= 1e-6 * (1 + Math.abs(m)), `variable ${v}[${i}]`)),
      );
      const bytes = SIZES.reduce((n, s) => n + 4 * s, 0);
      assert.equal(threaded[1]!.stats().bytesReduced, 2 * bytes);

      const root = threaded.map((c) => [new Float32Array([c.rank + 0.5, -c.rank])]);
      await Promise.all(threaded.map((c, r) => c.broadcast(root[r]!, 2)));
      for (const buffers of root) assert.deepEqual([...buffers[0]!], [2.5, -2]);
      await Promise.all(threaded.map((c) => c.barrier()));
    } finally {
      await Promise.all([...threaded, ...local].map((c) => c.close()));
    }
    // The threads end on their own: a thread left running would keep this test process alive.
    await assert.rejects(threaded[0]!.allReduceMean([new Float32Array(1)]), /collective is closed/);
  });

  describe('two ranks, each on its own thread', () => {
    // One ring for both tests, so two threads start instead of four: big buckets and chunks for
    // the first, a short timeout for the second, which leaves the ring failed (so it comes last).
    let threaded: Collective[] = [];
    before(async () => {
      threaded = await formRing(2, listenForRingOnThread, { bucketBytes: 1 << 20, chunkBytes: 256 << 10, timeoutMs: 600 });
    });
    after(() => Promise.all(threaded.map((c) => c.close())));

    it('moves the bytes while the calling thread is busy, which the ring on the calling thread cannot', async () => {
      // 1 MiB in 4 chunks: done in well under the busy spell even on a loaded machine.
      const floats = [new Float32Array(1 << 18).fill(1)];
      const local = await formRing(2, listenForRing, { bucketBytes: 1 << 20, chunkBytes: 256 << 10 });
      try {
        for (const [ring, inBackground] of [
          [threaded, true],
          [local, false],
        ] as const) {
          const done = Promise.all(ring.map((c) => c.allReduceMean(inSharedMemory(floats))));
          // The thread is posted the operation at once; the calling thread then computes for 400 ms
          // (100 where the ring is on it: it cannot move in a spell of any length).
          const busyEnd = busyFor(inBackground ? 400 : 100);
          await done;
          const { lastAllReduceStartedAt, lastAllReduceMs } = ring[0]!.stats();
          const finishedAt = lastAllReduceStartedAt + lastAllReduceMs;
          if (inBackground)
            assert.ok(finishedAt < busyEnd - 100, `finished ${(busyEnd - finishedAt).toFixed(0)} ms before the busy spell ended`);
          else assert.ok(finishedAt >= busyEnd, 'the ring on the busy thread could not move meanwhile');
        }
      } finally {
        await Promise.all(local.map((c) => c.close()));
      }
    });

    it("rejects with the ring's own error classes: a silent peer as PeerError naming it, bad options as DistConfigError", async () => {
      await assert.rejects(
        threaded[0]!.allReduceMean([new Float32Array(100)]),
        (e: Error) => e instanceof PeerError && e.rank === 1 && /timed out.*rank 1/.test(e.message),
      );
      await assert.rejects(threaded[0]!.allReduceMean([new Float32Array(1)]), PeerError, 'later operations fail fast');
      await assert.rejects(
        listenForRingOnThread({ rank: 0, worldSize: 2, listen: { host: '0.0.0.0', port: 0 }, token: '' }),
        (e: Error) => e instanceof DistConfigError && /without a token/.test(e.message),
      );
    });
  });

  it('fails to form with mismatched tokens as the ring on the calling thread does, its log lines coming back, and its thread ends', () =>
    // The threads end on their own: a thread left running would keep this test process alive.
    expectMismatchedTokensRefused(listenForRingOnThread));
});
