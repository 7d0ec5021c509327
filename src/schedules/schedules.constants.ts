/** Injection token of the schedules declared in `KeelModule.forRoot({ schedules })`. */
export const KEEL_SCHEDULES = 'KEEL:SCHEDULES';

/** A schedule's name: it is part of a URL and of its jobs' Idempotency-Keys. */
export const SCHEDULE_NAME = /^[A-Za-z0-9._-]{1,100}$/;
