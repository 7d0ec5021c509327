import type { JobState } from './job.model';

/** Domain errors. Services throw these; `DomainExceptionFilter` maps them to HTTP statuses. */
export abstract class DomainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export class JobNotFound extends DomainError {
  constructor(readonly jobId: string) {
    super(`job ${jobId} not found`);
  }
}

export class InvalidTransition extends DomainError {
  constructor(
    readonly jobId: string,
    readonly from: JobState,
    readonly event: string,
    /** Why, when the pair exists but this job cannot take it (a runNow of a job that is due already). */
    reason?: string,
  ) {
    super(`job ${jobId} is ${from}: ${reason ?? `${event} is not allowed from ${from}`}`);
  }
}

/**
 * An attempt's outcome that does not name the attempt the job is processing now: late, repeated,
 * or after a rescue or a cancel. It is discarded (and counted), never applied to another attempt.
 */
export class StaleOutcome extends InvalidTransition {
  constructor(
    jobId: string,
    from: JobState,
    readonly currentAttempt: number,
    event: string,
    readonly attempt: number | undefined,
  ) {
    super(jobId, from, event);
    this.message = `job ${jobId} is ${from}, attempt ${currentAttempt}: ${event} of attempt ${attempt ?? '?'} is stale`;
  }
}

/** The compare-and-set found the job in another state than the one the change was computed from. */
export class ConcurrentChange extends DomainError {
  constructor(readonly jobId: string) {
    super(`job ${jobId} changed while this request was handled; try again`);
  }
}

export class InvalidJob extends DomainError {}

/** No handler declares this job type (the types routes answer 404). */
export class JobTypeNotFound extends DomainError {
  constructor(readonly jobType: string) {
    super(`job type "${jobType}" not found`);
  }
}

export class BacklogFull extends DomainError {
  constructor(
    readonly backlog: number,
    readonly maxBacklog: number,
  ) {
    super(`the backlog is full (${backlog} pending jobs, MAX_BACKLOG ${maxBacklog}); retry later`);
  }
}

export class ShuttingDown extends DomainError {
  constructor() {
    super('the service is shutting down; submit to another instance or retry later');
  }
}

/** Another job already holds this idempotency key (a concurrent submission won the race). */
export class IdempotencyKeyTaken extends DomainError {
  constructor(readonly key: string) {
    super(`the Idempotency-Key ${key} is already in use`);
  }
}

/** The key was used before with a different request body. */
export class IdempotencyKeyReused extends DomainError {
  constructor(readonly key: string) {
    super(`the Idempotency-Key ${key} was already used with a different request body`);
  }
}

export class StoreUnavailable extends DomainError {}

export class ScheduleNotFound extends DomainError {
  constructor(readonly scheduleName: string) {
    super(`schedule ${scheduleName} not found`);
  }
}
