import { JobHandler, JobHandlerBase } from '../../core/job-handler';

/** Completes at once with `{}`. */
@JobHandler('noop')
export class NoopHandler extends JobHandlerBase<Record<string, never>, Record<string, never>> {
  async handle(): Promise<Record<string, never>> {
    return {};
  }
}
