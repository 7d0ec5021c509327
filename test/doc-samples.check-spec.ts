import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

// Every TypeScript sample of README.md and docs/*.md compiles against Keel's public surface and
// passes the project's lint (docs/embedding.md). Each ```ts or ```typescript block is written to a
// file of its own in a folder inside the repository (so node_modules resolve), where `'keel'` is
// src/index.ts and `'keel/terminus'` src/health/terminus.ts (a generated tsconfig's `paths`); the folder is type-checked with the compiler API
// and linted with eslint.config.mjs as it is. A block preceded by
//   <!-- sample: not-checked (the reason) -->
// is skipped, and
//   <!-- sample: needs-export NAME -->
// is skipped while src/index.ts does not export NAME (an export another branch brings), and
// checked from then on. See "Code samples in the docs are checked" in docs/decisions.md.

const ROOT = path.join(__dirname, '..');
const DOCS = [
  'README.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];

interface Sample {
  doc: string;
  line: number;
  code: string;
  /** Why it is not checked; undefined: checked. */
  skipped?: string;
}

const FENCE = /^\s*(`{3,}|~{3,})\s*([\w-]*)/;
const MARKER = /^\s*<!--\s*sample:\s*(.*?)\s*-->\s*$/;

/** The TypeScript blocks of one Markdown text, with the marker before each, if any. */
function samplesOf(doc: string, text: string, exported: (name: string) => boolean): Sample[] {
  const lines = text.split('\n');
  const samples: Sample[] = [];
  let marker: { text: string; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i]);
    if (m) {
      marker = { text: m[1], line: i + 1 };
      continue;
    }
    const fence = FENCE.exec(lines[i]);
    if (!fence) {
      if (marker && lines[i].trim() !== '') throw new Error(`${doc}:${marker.line}: a sample marker must come right before a \`\`\`ts block`);
      continue;
    }
    const close = lines.findIndex((l, j) => j > i && l.trim().startsWith(fence[1]) && l.trim().replace(/[`~]/g, '') === '');
    if (close < 0) throw new Error(`${doc}:${i + 1}: unclosed code block`);
    const lang = fence[2].toLowerCase();
    if (lang === 'ts' || lang === 'typescript') {
      samples.push({ doc, line: i + 1, code: lines.slice(i + 1, close).join('\n') + '\n', skipped: marker && skipReason(doc, marker, exported) });
    } else if (marker) {
      throw new Error(`${doc}:${marker.line}: a sample marker must come right before a \`\`\`ts block, not a ${lang || 'plain'} one`);
    }
    marker = undefined;
    i = close;
  }
  return samples;
}

function skipReason(doc: string, marker: { text: string; line: number }, exported: (name: string) => boolean): string | undefined {
  const notChecked = /^not-checked \((.+)\)$/.exec(marker.text);
  if (notChecked) return notChecked[1];
  const needs = /^needs-export (\w+)$/.exec(marker.text);
  if (needs) return exported(needs[1]) ? undefined : `src/index.ts does not export ${needs[1]} yet`;
  throw new Error(`${doc}:${marker.line}: unknown sample marker "${marker.text}": use "not-checked (reason)" or "needs-export NAME"`);
}

/** The names src/index.ts exports, read by the compiler. */
function publicNames(): Set<string> {
  const program = ts.createProgram([path.join(ROOT, 'src/index.ts')], { noEmit: true, experimentalDecorators: true, skipLibCheck: true });
  const checker = program.getTypeChecker();
  const symbol = checker.getSymbolAtLocation(program.getSourceFile(path.join(ROOT, 'src/index.ts'))!)!;
  return new Set(checker.getExportsOfModule(symbol).map((s) => s.name));
}

const fileNameOf = (s: Sample) => `${s.doc.replace(/\.md$/, '').replace(/\W+/g, '-').toLowerCase()}-${s.line}.ts`;

describe('the code samples of README.md and docs/*.md', () => {
  const dir = path.join(ROOT, `.doc-samples-${process.pid}`);
  let samples: Sample[];
  let checked: Sample[];

  beforeAll(() => {
    const names = publicNames();
    samples = DOCS.flatMap((doc) => samplesOf(doc, readFileSync(path.join(ROOT, doc), 'utf8'), (n) => names.has(n)));
    checked = samples.filter((s) => s.skipped === undefined);
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: '../tsconfig.json',
        compilerOptions: { noEmit: true, baseUrl: '..', paths: { keel: ['src/index.ts'], 'keel/terminus': ['src/health/terminus.ts'] }, types: ['node'] },
        include: ['*.ts'],
      }),
    );
    for (const s of checked) writeFileSync(path.join(dir, fileNameOf(s)), s.code);
    // What was checked, so that a reader of the test output sees it.
    console.log(
      [
        `${checked.length} of ${samples.length} TypeScript samples checked:`,
        ...samples.map((s) => `  ${s.skipped === undefined ? 'checked' : `skipped (${s.skipped})`}: ${s.doc}:${s.line}`),
      ].join('\n'),
    );
  }, 60_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the samples', () => {
    expect(checked.length).toBeGreaterThan(5);
  });

  it('compiles each one against the public surface (imported as "keel")', () => {
    const config = ts.getParsedCommandLineOfConfigFile(
      path.join(dir, 'tsconfig.json'),
      {},
      { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined },
    )!;
    const program = ts.createProgram(config.fileNames, config.options);
    const errors = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file === undefined || path.dirname(d.file.fileName) === dir)
      .map((d) => {
        const where = d.file ? `${sourceOf(d.file.fileName)}+${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : 'tsconfig';
        return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
      });
    expect(errors).toEqual([]);
  }, 120_000);

  it("passes the project's lint", () => {
    const out = execFileSync(process.execPath, [path.join(__dirname, 'support', 'lint-files.mjs')], {
      input: JSON.stringify(checked.map((s) => path.join(dir, fileNameOf(s)))),
      encoding: 'utf8',
    });
    const results = JSON.parse(out) as Array<{ filePath: string; messages: Array<{ ruleId: string | null; line: number; message: string }> }>;
    const problems = results.flatMap((r) => r.messages.map((m) => `${sourceOf(r.filePath)}+${m.line}: ${m.message} (${m.ruleId})`));
    expect(problems).toEqual([]);
  }, 120_000);

  /** "README.md:238" for the file written from the block at that line (a message adds the line within the block). */
  function sourceOf(file: string): string {
    const s = checked.find((c) => path.join(dir, fileNameOf(c)) === path.normalize(file));
    return s ? `${s.doc}:${s.line}` : file;
  }
});

describe('the paths named in README.md and docs/*.md', () => {
  it('exist (every src/... and test/... path outside code blocks)', () => {
    const missing: string[] = [];
    for (const doc of DOCS) {
      const prose = readFileSync(path.join(ROOT, doc), 'utf8').replace(/^\s*(`{3,})[^\n]*\n[\s\S]*?^\s*\1\s*$/gm, '');
      const spans = [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]);
      for (const p of spans.flatMap((span) => [...span.matchAll(/(?:^|[\s(])((?:src|test)\/[^\s`,;)]*)/g)].map((m) => m[1]))) {
        // A glob (`src/**/*.spec.ts`) or a placeholder (`test/<name>`, `src/…`) names no one file.
        if (/[*<{…]/.test(p)) continue;
        if (!existsSync(path.join(ROOT, p))) missing.push(`${doc}: ${p}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
