import { applyDecorators, Injectable, type Type } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import type { JobPayload, JobProgress } from './job.model';
import type { JobView } from './job.view';
import type { HandlerSchedule } from './schedule.model';
import type { RateLimit } from './type-settings';

/** What a handler gets besides the job. */
export interface JobContext {
  jobId: string;
  /** 1 for the first attempt; with at-least-once delivery, use it with the id to stay idempotent. */
  attempt: number;
  /** Fires on timeout, cancellation and shutdown; the attempt's outcome is decided then. */
  signal: AbortSignal;
  /**
   * Reports progress: a number 0..100 or a JSON object of at most 4 KiB (anything else throws a
   * RangeError). Stored at most every 250 ms per job; the last value before the attempt ends is
   * always stored. Returns at once: the write happens behind it.
   */
  progress(value: JobProgress): void;
  /**
   * Writes a line to the log of this attempt (docs/api.md "Handler logs"): a message (cut at
   * 2 KiB) and optional fields, a JSON object of at most 4 KiB (else the line is dropped). At most
   * 100 lines and 64 KiB per attempt; past them lines are dropped, and their count is stored as a
   * last line. Never throws and returns at once: lines are written in batches behind it, the last
   * ones before the attempt's outcome. Lines written after the attempt ended are not stored.
   */
  log(message: string, fields?: Record<string, unknown>): void;
}

/** Every job handler extends this and is marked with `@JobHandler('type')`. */
export abstract class JobHandlerBase<P extends object = JobPayload, R = unknown> {
  abstract handle(job: JobView<P>, context: JobContext): Promise<R>;

  /**
   * Checks that need more than the payload class (settings, cross-field rules), run at submission
   * after the class validated. Each message becomes part of the 400 answer.
   */
  validatePayload(_payload: P): string[] | Promise<string[]> {
    return [];
  }
}

export interface JobHandlerOptions {
  /** A class-validator class for the payload, checked at submission (400 when it fails). */
  payload?: Type<object>;
  /** A schedule of this type, upserted at every start (docs/api.md "Schedules"); its name defaults to the type. */
  schedule?: HandlerSchedule;
  /** Default: at most this many attempts of the type run at once in each process (1..1000). */
  concurrency?: number;
  /** Default: at most `max` starts in any window of `perMs`, across every instance. */
  rateLimit?: RateLimit;
}

export interface JobHandlerMetadata extends JobHandlerOptions {
  type: string;
}

export const JOB_HANDLER_METADATA = DiscoveryService.createDecorator<JobHandlerMetadata>();

/** Marks a provider as the handler of one job type. A second handler for the same type fails startup. */
export function JobHandler(type: string, options: JobHandlerOptions = {}): ClassDecorator {
  return applyDecorators(Injectable(), JOB_HANDLER_METADATA({ type, ...options }));
}

/** Any handler, whatever its payload and result types. */
export type AnyJobHandler = JobHandlerBase<never, unknown>;

/** A handler class (`@JobHandler`, extending `JobHandlerBase`): what the typed `JobsClient.add(Handler, payload)` takes. */
export type JobHandlerClass<H extends AnyJobHandler = AnyJobHandler> = abstract new (...args: never[]) => H;

/** The payload type of a handler (its class's `JobHandlerBase<Payload>`). */
export type PayloadOf<H> = H extends JobHandlerBase<infer P, unknown> ? P : never;

/**
 * The job type a class declares with `@JobHandler(type)`, read from the decorator's metadata (the
 * same the handler discovery reads); undefined for a class without it.
 */
export function jobTypeOf(cls: unknown): string | undefined {
  if (typeof cls !== 'function') return undefined;
  const meta = Reflect.getMetadata(JOB_HANDLER_METADATA.KEY, cls) as JobHandlerMetadata | undefined;
  return typeof meta?.type === 'string' ? meta.type : undefined;
}

/** Thrown by a handler: the job fails at once, without retry. */
export class PermanentJobError extends Error {
  override readonly name = 'PermanentJobError';
}
