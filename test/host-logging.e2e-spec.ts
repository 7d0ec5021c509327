import { Injectable, Logger, Module, type INestApplication, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { filter, firstValueFrom } from 'rxjs';
import { JobEvents, JobHandler, JobHandlerBase, JobsClient, KeelModule, PermanentJobError, type Job, type KeelEvent, type LogLevel } from '../src/index';

/**
 * Keel's own lines in a host application (docs/embedding.md): written through the host's Nest logger,
 * but only at or above Keel's `logLevel`, whatever the host's logger would show.
 */

type NestLevel = 'fatal' | 'error' | 'warn' | 'log' | 'debug' | 'verbose';

interface Entry {
  level: NestLevel;
  message: unknown;
  context?: string;
}

/** The host's logger: shows everything, and keeps every call. */
class RecordingLogger implements LoggerService {
  readonly entries: Entry[] = [];

  fatal(message: unknown, ...rest: unknown[]): void {
    this.record('fatal', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.record('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.record('warn', message, rest);
  }
  log(message: unknown, ...rest: unknown[]): void {
    this.record('log', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.record('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.record('verbose', message, rest);
  }

  private record(level: NestLevel, message: unknown, rest: unknown[]): void {
    const context = rest[rest.length - 1];
    this.entries.push({ level, message, context: typeof context === 'string' ? context : undefined });
  }
}

/** Every context Keel's classes write under. */
const KEEL_CONTEXTS = new Set([
  'Scheduler',
  'Jobs',
  'Retention',
  'TypeLimits',
  'Feeder',
  'Http',
  'Events',
  'PgStore',
  'SqliteStore',
  'Store',
  'Workers',
  'Lease',
  'Recovery',
]);

const keel = (logger: RecordingLogger, levels: NestLevel[]): Entry[] =>
  logger.entries.filter((e) => e.context !== undefined && KEEL_CONTEXTS.has(e.context) && levels.includes(e.level));
const text = (e: Entry): string => (typeof e.message === 'string' ? e.message : JSON.stringify(e.message));

/** The host's handler: `fail: true` fails the job for good (a warn line of Keel's). */
@JobHandler('greet')
class GreetHandler extends JobHandlerBase<{ fail?: boolean }, string> {
  async handle(job: Job<{ fail?: boolean }>): Promise<string> {
    if (job.payload.fail) throw new PermanentJobError('no greeting today');
    return 'hello';
  }
}

/** The host's own service, with its own debug line. */
@Injectable()
class HostService {
  private readonly logger = new Logger('Host');

  constructor(private readonly jobs: JobsClient) {}

  greet(fail = false): Promise<Job> {
    this.logger.debug('greeting');
    return this.jobs.add('greet', { fail }, { maxAttempts: 1 });
  }
}

async function startHost(logLevel: LogLevel | undefined, logger: RecordingLogger): Promise<INestApplication> {
  @Module({
    imports: [KeelModule.forRoot({ store: 'memory', http: false, workerConcurrency: 1, shutdownTimeoutMs: 100, ...(logLevel ? { logLevel } : {}) })],
    providers: [GreetHandler, HostService],
  })
  class HostModule {}
  const app = await NestFactory.create(HostModule, { logger, abortOnError: false });
  await app.init();
  return app;
}

/** Runs one job of the host's to its end, then closes the app: every line of Keel's is written by then. */
async function runOne(app: INestApplication, fail = false): Promise<Job> {
  const events = app.get(JobEvents);
  const ended = (id: string) =>
    firstValueFrom(events.events$.pipe(filter((e: KeelEvent) => e.job.id === id && (e.event === 'job.completed' || e.event === 'job.failed'))));
  const job = await app.get(HostService).greet(fail);
  const end = await ended(job.id);
  expect(end.event).toBe(fail ? 'job.failed' : 'job.completed');
  return job;
}

const open: INestApplication[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((app) => app.close()));
});

describe('Keel’s log lines in a host application', () => {
  it('at logLevel info (the default): Keel’s info lines reach the host’s logger, its debug lines do not, though the host shows debug', async () => {
    const logger = new RecordingLogger();
    const app = await startHost(undefined, logger);
    await runOne(app);
    await app.close();

    expect(logger.entries).toContainEqual({ level: 'debug', message: 'greeting', context: 'Host' });
    expect(keel(logger, ['log']).map((e) => e.context)).toEqual(expect.arrayContaining(['Store', 'Recovery', 'Workers']));
    expect(keel(logger, ['debug', 'verbose'])).toEqual([]);
  });

  it('at logLevel debug: Keel’s debug lines too, per job (Jobs, Workers)', async () => {
    const logger = new RecordingLogger();
    const app = await startHost('debug', logger);
    const job = await runOne(app);
    await app.close();

    const debug = keel(logger, ['debug']);
    expect(debug.filter((e) => e.context === 'Jobs').map(text)).toContainEqual(expect.stringContaining(`job ${job.id} (greet) submitted`));
    expect(debug.filter((e) => e.context === 'Workers').map(text)).toEqual(
      expect.arrayContaining([
        expect.stringContaining(`job ${job.id} (greet) start → processing`),
        expect.stringContaining(`job ${job.id} (greet) complete → completed`),
      ]),
    );
    expect(keel(logger, ['log']).length).toBeGreaterThan(0);
  });

  it('at logLevel error: no info or warn line of Keel’s (a failed job’s warn included); Nest’s own lines stay the host’s', async () => {
    const logger = new RecordingLogger();
    const app = await startHost('error', logger);
    await runOne(app, true);
    await app.close();

    expect(keel(logger, ['log', 'warn', 'debug', 'verbose'])).toEqual([]);
    expect(logger.entries.some((e) => e.context === 'InstanceLoader' && e.level === 'log')).toBe(true);
  });

  it('at logLevel warn: the failed job’s warn line, no info line', async () => {
    const logger = new RecordingLogger();
    const app = await startHost('warn', logger);
    const job = await runOne(app, true);
    await app.close();

    expect(keel(logger, ['warn']).map(text)).toContainEqual(expect.stringContaining(`job ${job.id} (greet) attempt 1 failed`));
    expect(keel(logger, ['log', 'debug', 'verbose'])).toEqual([]);
  });

  it('keeps each application’s level: two hosts in one process, one at debug and one at info, running at once', async () => {
    // Nest's logger is one per process: both apps write to it, and each filters its own lines.
    const logger = new RecordingLogger();
    const loud = await startHost('debug', logger);
    open.push(loud);
    const quiet = await startHost('info', logger);
    open.push(quiet);
    const [loudJob, quietJob] = await Promise.all([runOne(loud), runOne(quiet)]);

    const debug = keel(logger, ['debug']).map(text);
    expect(debug).toContainEqual(expect.stringContaining(`job ${loudJob.id} (greet) submitted`));
    expect(debug).toContainEqual(expect.stringContaining(`job ${loudJob.id} (greet) start → processing`));
    expect(debug.filter((line) => line.includes(quietJob.id))).toEqual([]);
  });
});
