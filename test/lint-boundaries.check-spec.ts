import { execFileSync } from 'node:child_process';
import path from 'node:path';

// The layers of src/ are lint rules (boundaries/dependencies in eslint.config.mjs). This checks that
// they bite, through ESLint's Node API (test/support/lint-text.mjs), on imports written only here.
type Message = { ruleId: string | null; message: string };

function lint(cases: Array<{ file: string; imports: string[] }>): Message[][] {
  const input = cases.map(({ file, imports }) => ({ filePath: file, code: imports.map((i) => `import '${i}';\n`).join('') }));
  const out = execFileSync(process.execPath, [path.join(__dirname, 'support', 'lint-text.mjs')], {
    input: JSON.stringify(input),
    encoding: 'utf8',
  });
  return JSON.parse(out) as Message[][];
}

const refused = [
  { file: 'src/core/x.ts', imports: ['../store/job-store'], message: 'src/core is the domain core' },
  { file: 'src/store/x.ts', imports: ['../workers/worker-pool.service'], message: 'a store imports only' },
  { file: 'src/store/sqlite/x.ts', imports: ['../../queue/feeder.service'], message: 'a store imports only' },
  { file: 'src/store/x.ts', imports: ['../events/job-events'], message: 'a store imports only' },
  { file: 'src/store/postgres/x.ts', imports: ['../../metrics/job-metrics'], message: 'a store imports only' },
  { file: 'src/handlers/x.ts', imports: ['../queue/feeder.service'], message: 'the handler registry is read by the queue' },
  { file: 'src/handlers/x.ts', imports: ['../workers/worker-pool.service'], message: 'the handler registry is read by the queue' },
  { file: 'src/queue/x.ts', imports: ['../recovery/recovery.service'], message: 'the queue is below' },
  { file: 'src/recovery/x.ts', imports: ['../jobs/jobs.service'], message: 'recovery is below' },
  { file: 'src/workers/x.ts', imports: ['../metrics/metrics.controller'], message: 'workers are below' },
  { file: 'src/workers/handlers/x.ts', imports: ['../../health/health.controller'], message: 'workers are below' },
  { file: 'src/queue/x.ts', imports: ['../keel.module'], message: 'sit on top' },
  { file: 'src/jobs/x.ts', imports: ['../main'], message: 'nothing imports it' },
  { file: 'src/jobs/x.ts', imports: ['../schedules/schedules.service'], message: 'schedules sit on the REST feature' },
  { file: 'src/workers/x.ts', imports: ['../schedules/cron'], message: 'schedules sit on the REST feature' },
  { file: 'src/queue/x.ts', imports: ['../types/types.service'], message: 'the job types routes (src/types) sit on the workers' },
  { file: 'src/dashboard/x.ts', imports: ['../jobs/jobs.service'], message: 'the dashboard is a client of the HTTP API' },
  { file: 'src/jobs/x.ts', imports: ['../dashboard/dashboard-files'], message: 'the dashboard sits on top' },
];
const allowed = [
  { file: 'src/store/x.ts', imports: ['../core/job.model', '../lifecycle/lifecycle.service', '../config/keel-config', '../logging/keel-log'] },
  { file: 'src/workers/x.ts', imports: ['../metrics/job-metrics', '../queue/feeder.service', '../recovery/lease.service'] },
  { file: 'src/jobs/x.ts', imports: ['../workers/worker-pool.service', '../store/job-store'] },
  { file: 'src/schedules/x.ts', imports: ['../jobs/jobs.service', '../store/job-store', '../recovery/recovery.constants'] },
  { file: 'src/handlers/x.ts', imports: ['../core/job-handler', '../config/keel-config', '../common/compiled-validation'] },
  { file: 'src/queue/x.ts', imports: ['../handlers/job-handler.registry'] },
  { file: 'src/types/x.ts', imports: ['../handlers/job-handler.registry', '../queue/type-limits', '../store/job-store'] },
  { file: 'src/dashboard/x.ts', imports: ['../auth/public.decorator', '../common/domain-exception.filter'] },
  { file: 'src/x.ts', imports: ['./dashboard/dashboard.module'] },
  { file: 'test/x.ts', imports: ['../src/store/job-store', '../src/main'] },
];

describe('module boundaries (lint)', () => {
  let results: Message[][];
  beforeAll(() => {
    results = lint([...refused, ...allowed]);
  }, 60_000);

  it.each(refused.map((c, i) => ({ ...c, i })))('$file may not import $imports', ({ message, i }) => {
    expect(results[i]).toEqual([{ ruleId: 'boundaries/dependencies', message: expect.stringContaining(message) as unknown }]);
  });

  it.each(allowed.map((c, i) => ({ ...c, i: refused.length + i })))('$file may import $imports', ({ i }) => {
    expect(results[i]).toEqual([]);
  });
});
