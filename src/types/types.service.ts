import { Inject, Injectable } from '@nestjs/common';
import { JobTypeNotFound } from '../core/job.errors';
import type { TypeSettings } from '../core/type-settings';
import { TypeLimits } from '../queue/type-limits';
import { JOBS_STORE, type ActiveCounts, type JobStore } from '../store/job-store';
import { JobHandlerRegistry } from '../workers/job-handler.registry';
import type { JobTypeDto, PatchJobTypeDto } from './dto/job-type.dto';

/**
 * The job types' limits and pause (contract §10): the handlers' defaults, overridden by what a
 * PATCH stored. A PATCH merges into the stored settings (the store is the source of truth, and
 * another instance may have changed them); a listing shows what this instance enforces, which
 * follows the store within SETTINGS_POLL_MS.
 */
@Injectable()
export class TypesService {
  /** PATCHes in this process one at a time: each merges into what the one before stored. */
  private updating: Promise<unknown> = Promise.resolve();

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

  /**
   * Stores the type's settings in full (the current ones with the patch applied; null removes a
   * limit), synced before it resolves; in force in this process at once, in the others at their
   * next poll.
   */
  update(type: string, patch: PatchJobTypeDto): Promise<JobTypeDto> {
    if (!this.registry.get(type)) return Promise.reject(new JobTypeNotFound(type));
    const done = this.updating.then(async () => {
      const current = (await this.store.typeSettings()).get(type) ?? this.limits.defaultsOf(type);
      const next: TypeSettings = {
        concurrency: patch.concurrency === undefined ? current.concurrency : patch.concurrency,
        rateLimit: patch.rateLimit === undefined ? current.rateLimit : patch.rateLimit && { max: patch.rateLimit.max, perMs: patch.rateLimit.perMs },
        paused: patch.paused ?? current.paused,
      };
      await this.store.saveTypeSettings(type, next);
      this.limits.apply(type, next);
      return view(type, next, (await this.store.activeCountsByType()).get(type));
    });
    this.updating = done.catch(() => undefined);
    return done;
  }
}

function view(type: string, settings: TypeSettings, counts: ActiveCounts | undefined): JobTypeDto {
  return { type, ...settings, counts: counts ?? { pending: 0, processing: 0 } };
}
