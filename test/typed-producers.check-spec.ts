import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

// `JobsClient.add(Handler, payload)` and `addBulk` are typed by the handler's payload type
// (docs/embedding.md): a wrong payload is a compile error. The fixture below is compiled against
// Keel's public surface (`'keel'` is src/index.ts) twice: as it is, where it must compile without
// an error (so each `@ts-expect-error` line has its error), and with the `@ts-expect-error`
// comments taken out, where each line after one must have an error of its own.

const FIXTURE = `import { Injectable } from '@nestjs/common';
import { JobHandler, JobHandlerBase, JobsClient, type Job } from 'keel';

export class SendEmail {
  to!: string;
  subject?: string;
}

@JobHandler('send-email', { payload: SendEmail })
export class SendEmailHandler extends JobHandlerBase<SendEmail> {
  async handle(job: Job<SendEmail>): Promise<string> {
    return job.payload.to;
  }
}

@JobHandler('resize')
export class ResizeHandler extends JobHandlerBase<{ width: number }> {
  async handle(): Promise<void> {}
}

export class NotAHandler {
  handle(): void {}
}

@Injectable()
export class Producer {
  constructor(private readonly jobs: JobsClient) {}

  async produce(): Promise<string> {
    const job = await this.jobs.add(SendEmailHandler, { to: 'a@example.com' }, { priority: 5, delayMs: 1000, idempotencyKey: 'k' });
    await this.jobs.add(SendEmailHandler, { to: 'a@example.com', subject: 'Hi' });
    await this.jobs.add('send-email', { anything: 1 }, { runAt: new Date().toISOString() });
    await this.jobs.add('noop');
    await this.jobs.addBulk([
      { type: SendEmailHandler, payload: { to: 'a@example.com' }, priority: 1 },
      { type: ResizeHandler, payload: { width: 10 } },
      { type: 'noop', payload: { free: true } },
    ]);
    const list: Array<{ type: string }> = [{ type: 'noop' }];
    await this.jobs.addBulk(list);
    // @ts-expect-error a field of the wrong type
    await this.jobs.add(SendEmailHandler, { to: 42 });
    // @ts-expect-error a required field missing
    await this.jobs.add(SendEmailHandler, { subject: 'Hi' });
    // @ts-expect-error a field the payload class does not have
    await this.jobs.add(SendEmailHandler, { to: 'a@example.com', cc: 'b@example.com' });
    // @ts-expect-error another handler's payload
    await this.jobs.add(ResizeHandler, { to: 'a@example.com' });
    // @ts-expect-error a class that is not a handler
    await this.jobs.add(NotAHandler, {});
    // @ts-expect-error an option of the wrong type
    await this.jobs.add(SendEmailHandler, { to: 'a@example.com' }, { priority: 'high' });
    // @ts-expect-error in a bulk, the second job's payload is the first one's
    await this.jobs.addBulk([{ type: SendEmailHandler, payload: { to: 'a@example.com' } }, { type: ResizeHandler, payload: { to: 'a@example.com' } }]);
    // @ts-expect-error in a bulk, a field of the wrong type
    await this.jobs.addBulk([{ type: ResizeHandler, payload: { width: '10' } }]);
    // @ts-expect-error the payload typed as the handler's: no such field
    return job.payload.from;
  }
}
`;

const EXPECT_ERROR = /^\s*\/\/ @ts-expect-error\b.*\n/gm;

describe('typed producers: JobsClient.add(Handler, payload) and addBulk', () => {
  const dir = path.join(__dirname, '..', `.typed-producers-${process.pid}`);
  const withExpectations = path.join(dir, 'producer.ts');
  const bare = path.join(dir, 'producer-bare.ts');
  let errors: Map<string, Array<{ line: number; message: string }>>;

  beforeAll(() => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(withExpectations, FIXTURE);
    writeFileSync(bare, FIXTURE.replace(EXPECT_ERROR, ''));
    const options: ts.CompilerOptions = {
      ...ts.getParsedCommandLineOfConfigFile(
        path.join(__dirname, '..', 'tsconfig.json'),
        {},
        { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined },
      )!.options,
      noEmit: true,
      baseUrl: path.join(__dirname, '..'),
      paths: { keel: ['src/index.ts'] },
      types: ['node'],
    };
    const program = ts.createProgram([withExpectations, bare], options);
    errors = new Map([withExpectations, bare].map((file) => [file, []]));
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const file = d.file && path.normalize(d.file.fileName);
      if (!file || !errors.has(file)) continue;
      errors
        .get(file)!
        .push({ line: d.file!.getLineAndCharacterOfPosition(d.start ?? 0).line + 1, message: ts.flattenDiagnosticMessageText(d.messageText, ' ') });
    }
  }, 120_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('compiles the right calls, and each wrong one has its error (every @ts-expect-error is used)', () => {
    expect(errors.get(withExpectations)).toEqual([]);
  });

  it('without the @ts-expect-error comments, each wrong call is an error of its own', () => {
    // The line after each comment, numbered as in the file without the comments.
    const wrong: number[] = [];
    FIXTURE.split('\n').forEach((line, i) => {
      if (/^\s*\/\/ @ts-expect-error\b/.test(line)) wrong.push(i + 2 - (wrong.length + 1));
    });
    expect(wrong).toHaveLength(9);
    expect([...new Set(errors.get(bare)!.map((e) => e.line))]).toEqual(wrong);
  });
});
