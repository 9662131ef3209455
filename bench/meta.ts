// The first line of a bench script's output: which commit ran, when, and on what machine.
//   node --import tsx bench/meta.ts   ->  {"bench":"meta","commit","dirty","date","machine":{...}}
import { execFileSync } from 'node:child_process';
import { cpus, arch, release, totalmem, type } from 'node:os';
import { gitCommit, ROOT } from './doc-tools.ts';

const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
console.log(
  JSON.stringify({
    bench: 'meta',
    commit: gitCommit(),
    dirty,
    date: new Date().toISOString(),
    machine: {
      os: `${type()} ${release()} ${arch()}`,
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model ?? 'unknown',
      memory_gb: Number((totalmem() / 2 ** 30).toFixed(1)),
      node: process.version,
    },
  }),
);
