import { Inject, Injectable } from '@nestjs/common';
import { JobTypeNotFound } from '../core/job.errors';
import type { TypeSettings } from '../core/type-settings';
import { TypeLimits } from '../queue/type-limits';
import { JOBS_STORE, type ActiveCounts, type JobStore } from '../store/job-store';
import { JobHandlerRegistry } from '../handlers/job-handler.registry';
import type { JobTypeDto, PatchJobTypeDto } from './dto/job-type.dto';

/**
 * The job types' limits and pause (docs/api.md "Job types: limits and pause"): the handlers' defaults, overridden by what a
 * PATCH stored. The store applies a PATCH to the fields it names, in one statement, so PATCHes of
 * one type through any instances at once compose instead of one undoing another; a listing shows
 * what this instance enforces, which follows the store within SETTINGS_POLL_MS.
 */
@Injectable()
export class TypesService {
  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    private readonly registry: JobHandlerRegistry,
    private readonly limits: TypeLimits,
  ) {}

  /** The settings in force in this instance: what its feeder and workers apply now. */
  async list(): Promise<JobTypeDto[]> {
    const counts = await this.store.activeCountsByType();
    return this.registry.types().map((type) => view(type, this.limits.settingsOf(type), counts.get(type)));
  }

  /** One type's settings in force in this instance; `JobTypeNotFound` when no handler declares it. */
  async get(type: string): Promise<JobTypeDto> {
    if (!this.registry.get(type)) throw new JobTypeNotFound(type);
    return view(type, this.limits.settingsOf(type), (await this.store.activeCountsByType()).get(type));
  }

  /**
   * Stores the fields the patch names (null removes a limit), synced before it resolves; in force
   * in this process at once, in the others at their next poll. Answers the type as stored after
   * this patch: a patch through another instance that committed later is not in the answer.
   */
  async update(type: string, patch: PatchJobTypeDto): Promise<JobTypeDto> {
    if (!this.registry.get(type)) throw new JobTypeNotFound(type);
    const stored = await this.store.patchTypeSettings(type, patch, this.limits.defaultsOf(type));
    this.limits.apply(type, stored);
    return view(type, stored.settings, (await this.store.activeCountsByType()).get(type));
  }
}

function view(type: string, settings: TypeSettings, counts: ActiveCounts | undefined): JobTypeDto {
  return { type, ...settings, counts: counts ?? { pending: 0, processing: 0 } };
}
