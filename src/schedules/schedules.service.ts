import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { validateInput } from '../common/input-validation';
import { ConfigError, KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { InvalidJob, ScheduleNotFound } from '../core/job.errors';
import { JOB_DEFAULTS } from '../core/job.model';
import type { Schedule, ScheduleDeclaration } from '../core/schedule.model';
import { JobHandlerRegistry } from '../handlers/job-handler.registry';
import { JobsService } from '../jobs/jobs.service';
import { JOBS_STORE, type JobStore } from '../store/job-store';
import { CronExpression } from './cron';
import { PutScheduleDto } from './dto/put-schedule.dto';
import { KEEL_SCHEDULES, SCHEDULE_NAME } from './schedules.constants';

/** A definition that passed every check, with its defaults filled in. */
type Definition = Omit<Schedule, 'name' | 'nextRunAt' | 'lastRunAt' | 'lastJobId' | 'createdAt' | 'updatedAt'> & { expression: CronExpression };

/**
 * The schedules' use cases (docs/api.md "Schedules"). A definition is checked before anything is stored: the
 * cron expression and zone by croner, the type and payload by the same checks as a submission,
 * the job's options by `CreateJobDto`'s validators. Declared schedules (`forRoot({ schedules })`,
 * `@JobHandler(type, { schedule })`) are checked at module init, so a bad one fails startup.
 */
@Injectable()
export class SchedulesService implements OnModuleInit {
  private readonly listeners: Array<() => void> = [];
  private declared: Array<{ name: string; definition: Definition }> = [];

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
    @Inject(KEEL_SCHEDULES) private readonly declarations: readonly ScheduleDeclaration[],
    private readonly jobs: JobsService,
    private readonly handlers: JobHandlerRegistry,
  ) {}

  /** Checks every declared schedule; the first bad one is a ConfigError, one line naming it. */
  async onModuleInit(): Promise<void> {
    const listed: unknown = this.declarations;
    if (!Array.isArray(listed)) throw new ConfigError(`schedules must be a list of schedules, got ${typeof listed}`);
    const found: Array<{ where: string; declaration: ScheduleDeclaration }> = (listed as ScheduleDeclaration[]).map((declaration, i) => ({
      where: `schedules[${i}]${typeof declaration?.name === 'string' ? ` (${declaration.name})` : ''}`,
      declaration,
    }));
    for (const { type, schedule } of this.handlers.schedules()) {
      const { name, ...rest } = schedule;
      found.push({ where: `@JobHandler('${type}') schedule`, declaration: { ...rest, name: name ?? type, type } });
    }
    const names = new Set<string>();
    this.declared = [];
    for (const { where, declaration } of found) {
      try {
        if (declaration === null || typeof declaration !== 'object') throw new InvalidJob('a schedule must be an object');
        const { name, ...definition } = declaration;
        if (names.has(name)) throw new InvalidJob(`the name ${name} is declared twice`);
        names.add(name);
        this.declared.push({ name: checkName(name), definition: await this.check(await validateInput(PutScheduleDto, definition)) });
      } catch (err) {
        if (!(err instanceof InvalidJob)) throw err;
        throw new ConfigError(`${where}: ${err.message}`);
      }
    }
  }

  /** Calls `listener` after a schedule was stored or deleted through this process. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Creates or replaces a schedule; synced before it resolves. */
  async put(name: string, dto: PutScheduleDto): Promise<{ schedule: Schedule; created: boolean }> {
    const definition = await this.check(dto);
    const outcome = await this.store.putSchedule(checkName(name), (stored) => plan(name, definition, stored, Date.now()));
    this.changed();
    return outcome;
  }

  async get(name: string): Promise<Schedule> {
    const schedule = await this.store.getSchedule(checkName(name));
    if (!schedule) throw new ScheduleNotFound(name);
    return schedule;
  }

  list(): Promise<Schedule[]> {
    return this.store.listSchedules();
  }

  async delete(name: string): Promise<void> {
    if (!(await this.store.deleteSchedule(checkName(name)))) throw new ScheduleNotFound(name);
    this.changed();
  }

  /** Stores the declared schedules (at start, before the scheduler's first pass). */
  async upsertDeclared(): Promise<void> {
    const now = Date.now();
    for (const { name, definition } of this.declared) await this.store.putSchedule(name, (stored) => plan(name, definition, stored, now));
  }

  private async check(dto: PutScheduleDto): Promise<Definition> {
    const expression = CronExpression.parse(dto.cron, dto.timezone);
    const payload = dto.payload ?? {};
    await this.jobs.checkTypeAndPayload(dto.type, payload);
    return {
      expression,
      cron: dto.cron,
      timezone: expression.timezone,
      type: dto.type,
      payload,
      priority: dto.priority ?? JOB_DEFAULTS.priority,
      maxAttempts: dto.maxAttempts ?? JOB_DEFAULTS.maxAttempts,
      backoffMs: dto.backoffMs ?? JOB_DEFAULTS.backoffMs,
      timeoutMs: dto.timeoutMs ?? this.config.jobTimeoutMs,
      paused: dto.paused ?? false,
    };
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

function checkName(name: string): string {
  if (typeof name !== 'string' || !SCHEDULE_NAME.test(name)) {
    throw new InvalidJob(`name must be 1 to 100 characters of A-Z, a-z, 0-9, ".", "_" and "-", got "${String(name).slice(0, 100)}"`);
  }
  return name;
}

/**
 * The schedule `definition` makes of the one stored. Its next slot is kept while the expression,
 * the zone and the pause are unchanged (a restart re-declaring it loses no slot); otherwise it
 * is the first slot after `now`: a new or changed expression, or a resume, never catches up.
 */
function plan(name: string, definition: Definition, stored: Schedule | undefined, now: number): Schedule {
  const { expression, ...fields } = definition;
  const sameTimes = stored !== undefined && stored.cron === fields.cron && stored.timezone === fields.timezone && stored.paused === fields.paused;
  return {
    name,
    ...fields,
    nextRunAt: fields.paused ? null : sameTimes ? stored.nextRunAt : expression.next(now),
    lastRunAt: stored?.lastRunAt ?? null,
    lastJobId: stored?.lastJobId ?? null,
    createdAt: stored?.createdAt ?? now,
    updatedAt: now,
  };
}
