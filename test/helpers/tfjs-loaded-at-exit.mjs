// Preloaded into a process by a test (node --import): at exit, the process says how many of
// TF.js's modules it loaded. Its child processes do not inherit it (they get their own argv).
import { createRequire } from 'node:module';
import process from 'node:process';

const { cache } = createRequire(import.meta.url);
process.on('exit', () => {
  const loaded = Object.keys(cache).filter((path) => path.includes('/@tensorflow/')).length;
  process.stderr.write(`tfjs modules loaded by this process: ${loaded}\n`);
});
