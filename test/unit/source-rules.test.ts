// Rules src/ keeps, read from its files: the layers only point down (a folder imports from folders
// below it, never above or beside), and no message the commands print holds a placeholder such as
// <flag> or <dir>. One process for both, as a process costs about a second to start: each describe
// block below keeps its state to itself.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type * as TS from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** What the layer rule reads: the code, compiled or not. */
const CODE = /\.(ts|js)$/;
/** What the message rule reads: TypeScript sources, not declarations. */
const TS_SOURCE = /^(?!.*\.d\.ts$).*\.ts$/;

/** The files under dir (relative to the repository root) whose names match `name`. */
function sourceFiles(dir: string, name: RegExp): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && name.test(e.name))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

describe('layers: the layers of src/ only point down', () => {
  // The layers of src/ only point down: a folder imports from folders listed before it, never after.
  // The order below is the architecture (src/README.md explains it); a new folder must be placed in it.

  /** Bottom first. Units on one line share a rank and must not import each other. */
  const LAYERS: string[][] = [
    ['src/util'],
    ['src/config'],
    ['src/backend', 'src/metrics'],
    ['src/data', 'src/losses'],
    ['src/models', 'src/optim', 'src/collective'],
    ['src/run'],
    ['src/train'],
    ['src/launch', 'src/eval'],
    ['src/restore', 'src/generate'],
    ['src/report', 'src/web'],
    ['src/cli', 'src/index.ts', 'workers'],
  ];

  function unitOf(path: string): { unit: string; rank: number } | undefined {
    for (const [rank, units] of LAYERS.entries()) {
      const unit = units.find((u) => path === u || path.startsWith(`${u}/`));
      if (unit) return { unit, rank };
    }
    return undefined;
  }

  /** Relative specifiers of static imports, re-exports and dynamic import() calls. */
  function relativeImports(source: string): string[] {
    const found: string[] = [];
    for (const m of source.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)) found.push(m[1]);
    return found;
  }

  test('the import scanner sees static, re-exported and dynamic imports', () => {
    const sample = [
      "import { a } from '../x/a.ts';",
      "export { b } from './b.ts';",
      "const c = await import('../../c.ts');",
      "import './side.ts';",
      "import z from 'node:fs';",
    ].join('\n');
    assert.deepEqual(relativeImports(sample), ['../x/a.ts', './b.ts', '../../c.ts', './side.ts']);
  });

  test('every source folder has a place in the layer order', () => {
    const unplaced = [...sourceFiles('src', CODE), ...sourceFiles('workers', CODE)].filter((f) => !unitOf(f));
    assert.deepEqual(unplaced, [], 'add these folders to LAYERS in test/unit/source-rules.test.ts');
  });

  test('no import runs from a lower folder to a higher one, or sideways between folders of one rank', () => {
    const uphill: string[] = [];
    for (const file of [...sourceFiles('src', CODE), ...sourceFiles('workers', CODE)]) {
      const from = unitOf(file);
      if (!from) continue;
      for (const spec of relativeImports(readFileSync(join(ROOT, file), 'utf8'))) {
        const target = relative(ROOT, resolve(ROOT, dirname(file), spec));
        const to = unitOf(target);
        if (!to) {
          uphill.push(`${file} imports ${target}, outside src/ and workers/`);
        } else if (to.unit !== from.unit && to.rank >= from.rank) {
          uphill.push(`${file} (${from.unit}) imports ${target} (${to.unit})`);
        }
      }
    }
    assert.deepEqual(uphill, []);
  });
});

describe('cli-messages: no placeholder in a message', () => {
  // No message the commands print holds a placeholder such as `<flag>` or `<dir>` that the user must
  // fill in: a message names the real thing (the dataset, the folder) or gives a real example.
  // Every string and template literal in src/ and workers/ is read (so a hint kept in a variable, or
  // built by a helper in another file, is read too), except two kinds that are not messages:
  // commander's help text (`.option('--out <dir>', ...)`, whose <value> is argument syntax) and the
  // HTML and SVG markup of the report and plots.

  // Loaded with require, as src/util/tf.ts loads TF.js: an ESM import of this 9 MB CommonJS bundle
  // under tsx costs about 1.5 s more CPU than require.
  let ts: typeof TS;
  before(() => {
    ts = createRequire(import.meta.url)('typescript') as typeof TS;
  });

  /** `<word>` or `<two words>`, not `<=`, `<<`, a generic `Map<K>` or a regex group `(?<name>`. */
  const PLACEHOLDER = /(?<![\w?<])<[A-Za-z][\w-]*(?: [\w-]+)*>/;

  /** Calls whose string arguments are commander's help and usage text. */
  const HELP_CALLS = new Set([
    'option',
    'requiredOption',
    'argument',
    'command',
    'usage',
    'description',
    'summary',
    'addHelpText',
    'helpOption',
  ]);
  const HELP_CLASSES = new Set(['Option', 'Argument', 'Command']);

  /** Markup (the report's HTML, SVG plots): a closing or self-closing tag, or, in the report's own files, a literal that opens with a tag. */
  const MARKUP_FILES = /^src\/(report\/|util\/svg\.ts$)/;
  const looksLikeMarkup = (file: string, text: string): boolean =>
    /<\/[a-z]|\/>/i.test(text) || (MARKUP_FILES.test(file) && /^\s*<[a-z]/i.test(text));

  interface Found {
    file: string;
    line: number;
    text: string;
  }

  /** The text of a string or template literal; `${...}` becomes `…`. */
  function literalText(node: TS.Node): string | undefined {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
    if (ts.isTemplateExpression(node)) return node.head.text + node.templateSpans.map((s) => `…${s.literal.text}`).join('');
    return undefined;
  }

  /** Whether `node` is an argument of a commander help call (`.option(...)`, `new Option(...)`) or a help constant (`RUN_HELP = '...'`). */
  function inHelpCall(node: TS.Node): boolean {
    for (let at: TS.Node = node; at.parent; at = at.parent) {
      const p = at.parent;
      if (ts.isVariableDeclaration(p) && p.initializer === at) return ts.isIdentifier(p.name) && /help$/i.test(p.name.text);
      if (ts.isCallExpression(p) && p.arguments.includes(at as TS.Expression)) {
        const callee = p.expression;
        if (ts.isPropertyAccessExpression(callee) && HELP_CALLS.has(callee.name.text)) return true;
        return false;
      }
      if (ts.isNewExpression(p) && p.arguments?.includes(at as TS.Expression)) {
        return ts.isIdentifier(p.expression) && HELP_CLASSES.has(p.expression.text);
      }
      if (ts.isBlock(p) || ts.isSourceFile(p)) return false;
    }
    return false;
  }

  /** Placeholders in the literals of one source text. */
  function placeholdersIn(file: string, source: string): Found[] {
    const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    const found: Found[] = [];
    const visit = (node: TS.Node): void => {
      const text = literalText(node);
      if (text !== undefined) {
        const markup = looksLikeMarkup(file, text);
        if (!markup && PLACEHOLDER.test(text) && !inHelpCall(node)) {
          found.push({ file, line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1, text });
        }
        if (ts.isTemplateExpression(node)) node.templateSpans.forEach((s) => visit(s.expression));
        return;
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
    return found;
  }

  test('the checker finds a placeholder however the message is built, and passes help text, markup and operators', () => {
    const old = [
      'const hint = cfg.format === "medmnist"',
      "  ? 'fetch it with `medvae data download <flag>`'",
      '  : `point data.path at the folder; MedMNIST files come from \\`medvae data download <flag>\\``;',
      'throw new DatasetNotFoundError(cfg.path, `no such file or folder: ${hint}`);',
      'throw new UsageError(`--resume ${x}: give runs/<name> or runs/<name>/checkpoints/step-N`);',
      'progress.info(`warning: write into <run dir> instead`);',
    ].join('\n');
    assert.deepEqual(
      placeholdersIn('src/data/open.ts', old).map((f) => f.line),
      [2, 3, 5, 6],
    );
    const fine = [
      "program.command('data').argument('<flag>', 'dataset').option('--dir <dir>', 'folder', 'data');",
      "const o = new Option('--size <px>', 'image size');",
      "throw new UsageError(`--n expects an integer >= 2, got '${n}' (a << b, x<=y)`);",
      "const re = new RegExp('(?<name>[a-z]+)');",
      'throw new Error(`expected Map<string> here`);',
      "export const RUN_HELP = 'run directory (runs/<name>)';",
      'const row = `<tr><td>${a}</td></tr>`;',
    ].join('\n');
    assert.deepEqual(placeholdersIn('src/cli/x.ts', fine), []);
    const report = 'return `<figure><img src="${uri}"><figcaption>${what}</figcaption></figure>`;\nconst row = \'<tr>\';';
    assert.deepEqual(placeholdersIn('src/report/html.ts', report), []);
    assert.equal(placeholdersIn('src/report/html.ts', "throw new Error('give <dir>');").length, 1, 'messages in report/ are read too');
  });

  test('no message in src/ or workers/ holds a placeholder such as <flag> or <dir>', () => {
    const files = [...sourceFiles('src', TS_SOURCE), ...sourceFiles('workers', TS_SOURCE)];
    assert.ok(files.length > 100, `read ${files.length} files`);
    const found = files.flatMap((f) => placeholdersIn(f, readFileSync(join(ROOT, f), 'utf8')));
    assert.deepEqual(
      found.map((f) => `${f.file}:${f.line}: ${f.text}`),
      [],
      'name the real dataset, folder or run, or give a real example',
    );
  });
});
