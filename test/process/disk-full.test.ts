// Out of disk: on a small tmpfs the test mounts (as root), a run whose next picture or checkpoint
// does not fit stops with one line naming what it was writing, and the previous checkpoint stays
// intact and resumable. Skipped, with the reason, where mounting is not allowed. `medvae train` runs
// in this process through its commander wiring (medvaeInProcess), and in a real process for the
// checkpoint that does not fit: exit 1, the line last on its stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { medvaeInProcess as medvae, medvaeProcess } from '../helpers/medvae-cli.ts';
import { listCheckpoints } from '../../src/run/checkpoint.ts';
import { verifyCheckpoint } from '../../src/run/checkpoint-manifest.ts';

/** Mounts a tmpfs of `size` on a fresh folder; the reason it cannot, instead, when it cannot. */
function mountTmpfs(size: string): { dir: string } | { reason: string } {
  if (process.getuid?.() !== 0) return { reason: 'mounting a tmpfs needs root' };
  const dir = mkdtempSync(join(tmpdir(), 'medvae-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { reason: `mount -t tmpfs failed: ${(r.stderr || r.error?.message || '').trim()}` };
  }
  return { dir };
}

function unmount(dir: string): void {
  spawnSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
}

/** Leaves `keep` bytes free on the filesystem of `dir`. */
function fillUp(dir: string, keep: number): void {
  const fs = statfsSync(dir);
  writeFileSync(join(dir, 'filler'), Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - keep)));
}

test('a checkpoint or picture write that runs out of space stops the run in one line; the previous checkpoint stays intact', async (t) => {
  const mounted = mountTmpfs('8m');
  if ('reason' in mounted) {
    t.skip(mounted.reason);
    return;
  }
  const data = join(tmpdir(), `medvae-full-data-${process.pid}.npz`);
  try {
    writeTinyNpz(data, { train: 48, val: 8, test: 8 });
    const run = join(mounted.dir, 'run');
    const common = ['--backend', 'wasm', '--log-format', 'plain'];
    const first = await medvae(['train', '--config', 'configs/smoke.yaml', '--data', data, '--epochs', '1', '--out', run, ...common]);
    assert.equal(first.status, 0, first.stderr);
    const [ckpt] = listCheckpoints(join(run, 'checkpoints'));
    assert.ok(ckpt?.endsWith('step-0000003'));

    // Room for the pictures but not the checkpoint, then not even for the pictures.
    for (const [keep, writing, inProcess] of [
      [256 * 1024, /\/checkpoints\/step-0000006/, false],
      [16 * 1024, /\/samples\/epoch-0002\.png/, true],
    ] as const) {
      fillUp(mounted.dir, keep);
      const args = ['train', '--resume', run, '--epochs', '2', ...common];
      const full = inProcess ? await medvae(args) : medvaeProcess(args);
      assert.equal(full.status, 1, full.stderr);
      const last = full.stderr.trim().split('\n').at(-1)!;
      assert.match(
        last,
        /^error: no space left on the device writing \S+: free some space there .*; the last checkpoint \S+step-0000003 is intact$/,
      );
      assert.match(last, writing);
      assert.doesNotMatch(full.stderr, /\n\s+at /);
      assert.deepEqual(listCheckpoints(join(run, 'checkpoints')), [ckpt]);
      verifyCheckpoint(ckpt!);
      assert.deepEqual(
        readdirSync(join(run, 'checkpoints')).filter((f) => f.startsWith('.')),
        [],
        'no temporary left behind',
      );
      rmSync(join(mounted.dir, 'filler'));
    }

    // Space freed: the same command continues from the intact checkpoint.
    const again = await medvae(['train', '--resume', run, '--epochs', '2', ...common]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /resumed from \S+step-0000003/);
  } finally {
    unmount(mounted.dir);
    rmSync(data, { force: true });
  }
});
