/**
 * Keel's public surface (docs/embedding.md): what an application imports from the package. Anything
 * not exported here is internal and may change.
 */
export { KeelModule } from './keel.module';
export { keelOpenApiDocument } from './openapi/keel-openapi-document';
export type { KeelModuleOptions, KeelModuleExtras } from './keel.options';
export type { BuiltInType } from './workers/handlers/built-in';
export type { KeelSettings, StoreKind, LogLevel, ProcessRole } from './config/keel-config';
export { ConfigError } from './config/keel-config';

export { JobHandler, JobHandlerBase, PermanentJobError } from './core/job-handler';
export type { JobContext, JobHandlerOptions, JobHandlerClass, PayloadOf } from './core/job-handler';
export type { ScheduleDefinition, ScheduleDeclaration, HandlerSchedule } from './core/schedule.model';
export type { RateLimit, TypeSettings } from './core/type-settings';

export { JobsClient } from './jobs/jobs.client';
export type { JobOptions, BulkJob, TypedBulkJob, CheckedBulkJobs, ListQuery, JobFilter, LogsQuery } from './jobs/jobs.client';
export type { BulkAction } from './jobs/dto/bulk-action.dto';
export type { BulkResult } from './jobs/jobs.service';
export type { PayloadValue } from './store/job-store';
export type { JobLogLineView } from './jobs/dto/job-log.dto';
export type { CallerTransaction } from './store/transactional-insert';
export { KeelTypes } from './types/keel-types';
export { KeelHealth, type KeelReadiness } from './health/keel-health';
export type { JobTypeView, TypeLimitsPatch } from './types/keel-types';
export { KeelSchedules } from './schedules/keel-schedules';
export type { ScheduleView } from './schedules/schedule.view';
export { JobEvents, KEEL_EVENT_NAMES } from './events/job-events';
export type { KeelEvent, KeelEventName, KeelJobEvent, KeelLogEvent, KeelEventLogLine } from './events/job-events';

export { JOB_STATES } from './core/job.model';
export type { JobState, JobPayload, JobProgress } from './core/job.model';
export type { JobView as Job, JobView } from './core/job.view';
export type { AttemptOutcome, AttemptView } from './core/attempt.model';
export type { StatsView, StatsMinuteView, StatsTotalView, WaitView } from './core/job-stats.model';
export {
  DomainError,
  InvalidJob,
  JobNotFound,
  ScheduleNotFound,
  JobTypeNotFound,
  InvalidTransition,
  ConcurrentChange,
  BacklogFull,
  IdempotencyKeyReused,
  ShuttingDown,
  StoreUnavailable,
} from './core/job.errors';
export { DuplicateJobHandlerError, InvalidJobHandlerError, RequestScopedJobHandlerError } from './handlers/job-handler.errors';
