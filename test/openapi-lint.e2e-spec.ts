import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { removeTempDirs, tempDir } from './support/app';
import { EmailModule } from './support/email-handler';
import { buildDocument } from './support/openapi-document';

/**
 * The OpenAPI document passes `redocly lint` (its recommended rules) with no error, with and
 * without API_KEY: what a client generator or Swagger UI would stumble on, redocly reports.
 */

const REDOCLY = join(__dirname, '..', 'node_modules', '.bin', 'redocly');

afterAll(removeTempDirs);

interface LintResult {
  totals: { errors: number; warnings: number };
  problems: Array<{ ruleId: string; severity: string; message: string; location: Array<{ pointer: string }> }>;
}

async function lint(document: object): Promise<LintResult> {
  const file = join(tempDir('keel-openapi-lint-'), 'openapi.json');
  writeFileSync(file, JSON.stringify(document, null, 2));
  // redocly exits non-zero when it finds errors; its JSON report is on stdout either way.
  const { stdout } = await promisify(execFile)(REDOCLY, ['lint', file, '--format', 'json'], {
    cwd: join(__dirname, '..'),
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
  }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  return JSON.parse(stdout) as LintResult;
}

function errorsOf(result: LintResult): string[] {
  return result.problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`);
}

it.each([
  ['default settings, with an application handler', {}],
  ['with API_KEY', { API_KEY: 'lint-key' }],
])('redocly lint finds no error in the document (%s)', async (_name, env) => {
  const result = await lint(await buildDocument(env, [EmailModule]));
  expect(errorsOf(result)).toEqual([]);
  expect(result.totals.errors).toBe(0);
});
