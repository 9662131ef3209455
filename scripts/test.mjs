// The test command behind `npm test`, `npm run test:unit`, `test:gpu` and `test:process`: Node's
// test runner over the tiers' files (test/<tier>/*.test.ts, run through tsx: start it with
// `node --import tsx`), a process per file, `--concurrency N` at a time. The tiers: unit, tests in
// one process on the CPU backends (the edit-test loop); gpu, kernels and training steps on a WebGPU
// adapter (a software one where the machine has no GPU, which takes many times longer); process,
// tests that start medvae's commands, workers, servers and tools as processes. The files that take longest
// start first, as a scheduler of jobs on a few machines does (longest processing time first):
// `node --test` orders files by name, and a long file that starts near the end runs alone at the
// end while the other cores idle.
//
// Usage: node --import tsx scripts/test.mjs [--concurrency N] TIER...
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

/** The longest files, longest first (CPU time, each measured alone); all others follow by name. */
const LONGEST = [
  'process/webgpu-cli', // training processes on the software GPU adapter
  'process/package', // npm pack and install
  'process/dist-multihost',
  'process/lint', // ESLint and Prettier with a cold cache, as in CI
  'gpu/webgpu-kernels', // the software adapter compiles every kernel
  'process/dist-training',
  'process/chaos',
  'process/native-determinism',
  'process/train-cli',
];

const args = process.argv.slice(2);
let concurrency = 2;
const tiers = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--concurrency') concurrency = Number(args[++i]);
  else tiers.push(args[i]);
}
if (tiers.length === 0 || !Number.isInteger(concurrency) || concurrency < 1) {
  process.stderr.write('usage: node --import tsx scripts/test.mjs [--concurrency N] TIER... (TIER: unit, gpu, process)\n');
  process.exit(2);
}

const root = join(import.meta.dirname, '..', 'test');
const files = tiers.flatMap((tier) =>
  readdirSync(join(root, tier))
    .filter((name) => name.endsWith('.test.ts'))
    .sort()
    .map((name) => `${tier}/${name.slice(0, -'.test.ts'.length)}`),
);
const rank = (file) => (LONGEST.includes(file) ? LONGEST.indexOf(file) : LONGEST.length);
const ordered = files.map((file, i) => ({ file, i })).sort((a, b) => rank(a.file) - rank(b.file) || a.i - b.i);

const stream = run({ files: ordered.map(({ file }) => join(root, `${file}.test.ts`)), concurrency });
stream.on('test:fail', () => {
  process.exitCode = 1;
});
stream.compose(spec).pipe(process.stdout);
