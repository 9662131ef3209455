// No message the commands print holds a placeholder such as `<flag>` or `<dir>` that the user must
// fill in: a message names the real thing (the dataset, the folder) or gives a real example.
// Every string and template literal in src/ and workers/ is read (so a hint kept in a variable, or
// built by a helper in another file, is read too), except two kinds that are not messages:
// commander's help text (`.option('--out <dir>', ...)`, whose <value> is argument syntax) and the
// HTML and SVG markup of the report and plots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import type * as TS from 'typescript';

// Loaded with require, as src/util/tf.ts loads TF.js: an ESM import of this 9 MB CommonJS bundle
// under tsx costs about 1.5 s more CPU than require.
const ts = createRequire(import.meta.url)('typescript') as typeof TS;

const ROOT = join(import.meta.dirname, '..', '..');

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
export function placeholdersIn(file: string, source: string): Found[] {
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

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ts$/.test(e.name) && !e.name.endsWith('.d.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
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
  const files = [...sourceFiles('src'), ...sourceFiles('workers')];
  assert.ok(files.length > 100, `read ${files.length} files`);
  const found = files.flatMap((f) => placeholdersIn(f, readFileSync(join(ROOT, f), 'utf8')));
  assert.deepEqual(
    found.map((f) => `${f.file}:${f.line}: ${f.text}`),
    [],
    'name the real dataset, folder or run, or give a real example',
  );
});
