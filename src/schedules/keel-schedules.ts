import { Injectable } from '@nestjs/common';
import { validateInput } from '../common/input-validation';
import type { ScheduleDefinition } from '../core/schedule.model';
import { PutScheduleDto } from './dto/put-schedule.dto';
import { toScheduleView, type ScheduleView } from './schedule.view';
import { SchedulesService } from './schedules.service';

/**
 * The schedules from inside the application (docs/embedding.md): the use cases of `/v1/schedules`,
 * through the same service and the same validation. A bad definition or name rejects with
 * `InvalidJob` where the route answers 400 (nothing is stored), an unknown name with
 * `ScheduleNotFound` where it answers 404. Each change is synced before it resolves.
 */
@Injectable()
export class KeelSchedules {
  constructor(private readonly schedules: SchedulesService) {}

  /** Creates or replaces the schedule `name`; `created` says which, as the route's 201 or 200. */
  async put(name: string, definition: ScheduleDefinition): Promise<{ schedule: ScheduleView; created: boolean }> {
    const { schedule, created } = await this.schedules.put(name, await validateInput(PutScheduleDto, definition));
    return { schedule: toScheduleView(schedule), created };
  }

  async get(name: string): Promise<ScheduleView> {
    return toScheduleView(await this.schedules.get(name));
  }

  /** Every schedule, by name. */
  async list(): Promise<ScheduleView[]> {
    return (await this.schedules.list()).map(toScheduleView);
  }

  /** Deletes the schedule; the jobs it made stay. */
  async delete(name: string): Promise<void> {
    await this.schedules.delete(name);
  }
}
