import { Injectable } from '@nestjs/common';
import { validateInput } from '../common/input-validation';
import type { RateLimit } from '../core/type-settings';
import { PatchJobTypeDto } from './dto/job-type.dto';
import { TypesService } from './types.service';

/** A job type's settings as they are in force in this instance, and its active jobs (as `GET /v1/types` lists them). */
export interface JobTypeView {
  type: string;
  /** Per process; null: no limit. */
  concurrency: number | null;
  /** Across every instance; null: no limit. */
  rateLimit: RateLimit | null;
  paused: boolean;
  counts: { pending: number; processing: number };
}

/** What `KeelTypes.update` changes: a field left out stays as it is, `null` removes the limit. */
export interface TypeLimitsPatch {
  concurrency?: number | null;
  rateLimit?: RateLimit | null;
  paused?: boolean;
}

/**
 * The job types' limits and pause from inside the application (docs/embedding.md): the use cases
 * of `/v1/types`, through the same service and the same validation. An unknown type rejects with
 * `JobTypeNotFound` where the route answers 404, a bad patch with `InvalidJob` where it answers 400.
 * A change is stored, in force in this process at once and in the others within a second.
 */
@Injectable()
export class KeelTypes {
  constructor(private readonly types: TypesService) {}

  /** Every type some handler declares, sorted by type. */
  list(): Promise<JobTypeView[]> {
    return this.types.list();
  }

  get(type: string): Promise<JobTypeView> {
    return this.types.get(type);
  }

  /** Stores the fields `patch` names; answers the type as stored now. */
  async update(type: string, patch: TypeLimitsPatch): Promise<JobTypeView> {
    return this.types.update(type, await validateInput(PatchJobTypeDto, patch));
  }

  /** No attempt of the type starts while paused; submissions are still accepted. */
  pause(type: string): Promise<JobTypeView> {
    return this.update(type, { paused: true });
  }

  resume(type: string): Promise<JobTypeView> {
    return this.update(type, { paused: false });
  }
}
