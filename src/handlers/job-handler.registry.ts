import { Injectable, type Type } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { plainToInstance } from 'class-transformer';
import { validate, type ValidationError } from 'class-validator';
import type { JobPayload } from '../core/job.model';
import type { HandlerSchedule } from '../core/schedule.model';
import { ConfigError } from '../config/keel-config';
import { limitProblems, type TypeSettings } from '../core/type-settings';
import { compiledCheck } from '../common/compiled-validation';
import { JOB_HANDLER_METADATA, JobHandlerBase, type JobHandlerMetadata } from '../core/job-handler';
import { DuplicateJobHandlerError, InvalidJobHandlerError, RequestScopedJobHandlerError } from './job-handler.errors';

/** A handler and everything its `@JobHandler` declares. */
export interface RegisteredHandler extends JobHandlerMetadata {
  handler: JobHandlerBase;
  /** Its declared limits as a type's settings: the defaults until a PATCH stores others. */
  settings: TypeSettings;
}

/**
 * Every `@JobHandler` provider of the app with its metadata: the one place that scans for them.
 * The scan runs on the first read, whichever hook or request comes first (every provider exists
 * by then), so no module order can find it empty; a bad handler throws from that read.
 */
@Injectable()
export class JobHandlerRegistry {
  private found?: Map<string, RegisteredHandler>;
  private sortedTypes?: readonly string[];

  constructor(private readonly discovery: DiscoveryService) {}

  get(type: string): RegisteredHandler | undefined {
    return this.handlers.get(type);
  }

  /** The handled types, sorted: the only types this process claims (another version's are left to its instances). */
  types(): readonly string[] {
    return (this.sortedTypes ??= [...this.handlers.keys()].sort());
  }

  /** The limits `type`'s handler declares (a PATCH may override them); undefined for an unknown type. */
  declaredSettings(type: string): TypeSettings | undefined {
    return this.handlers.get(type)?.settings;
  }

  /** The schedules the handlers declare, in the order discovery found them. */
  schedules(): Array<{ type: string; schedule: HandlerSchedule }> {
    return [...this.handlers.values()].flatMap(({ type, schedule }) => (schedule ? [{ type, schedule }] : []));
  }

  /** Each registered type with its payload class (if any), sorted by type: what the OpenAPI document describes. */
  registrations(): Array<{ type: string; payload?: Type<object> }> {
    return this.types().map((type) => ({ type, payload: this.handlers.get(type)!.payload }));
  }

  /**
   * The problems with `payload` for `type`, as `payload.<field> ...` messages; empty when valid.
   * Synchronous when it can be: a payload its class's compiled check accepts skips class-validator
   * (which gives the messages of any other), and the handler's own check answers at once.
   */
  validatePayload(type: string, payload: JobPayload): string[] | Promise<string[]> {
    const registered = this.handlers.get(type);
    if (!registered) return [];
    if (registered.payload && !compiledCheck(registered.payload)?.(payload)) return this.validateWithClassValidator(registered, registered.payload, payload);
    return registered.handler.validatePayload(payload);
  }

  private async validateWithClassValidator(registered: RegisteredHandler, cls: Type<object>, payload: JobPayload): Promise<string[]> {
    const errors = await validate(plainToInstance(cls, payload), { whitelist: true, forbidNonWhitelisted: true });
    if (errors.length > 0) return flatten(errors, 'payload');
    return registered.handler.validatePayload(payload);
  }

  private get handlers(): Map<string, RegisteredHandler> {
    return (this.found ??= this.scan());
  }

  private scan(): Map<string, RegisteredHandler> {
    const handlers = new Map<string, RegisteredHandler>();
    for (const wrapper of this.discovery.getProviders({ metadataKey: JOB_HANDLER_METADATA.KEY })) {
      const meta = this.discovery.getMetadataByDecorator(JOB_HANDLER_METADATA, wrapper);
      if (!meta) continue;
      const className = (wrapper.metatype as Type | undefined)?.name ?? String(wrapper.token);
      // Never skipped silently: its type would then be refused as unknown, with no word why.
      if (!wrapper.isDependencyTreeStatic()) throw new RequestScopedJobHandlerError(className, meta.type);
      if (!wrapper.instance) continue;
      const instance: unknown = wrapper.instance;
      if (!(instance instanceof JobHandlerBase)) throw new InvalidJobHandlerError(className, meta.type);
      const existing = handlers.get(meta.type);
      if (existing) throw new DuplicateJobHandlerError(meta.type, existing.handler.constructor.name, className);
      const problems = limitProblems(meta.concurrency, meta.rateLimit);
      if (problems.length > 0) throw new ConfigError(`${className} (@JobHandler("${meta.type}")): ${problems.join('; ')}`);
      const settings = { concurrency: meta.concurrency ?? null, rateLimit: meta.rateLimit ?? null, paused: false };
      handlers.set(meta.type, { ...meta, handler: instance as JobHandlerBase, settings });
    }
    return handlers;
  }
}

function flatten(errors: ValidationError[], path: string): string[] {
  return errors.flatMap((e) => {
    const here = `${path}.${e.property}`;
    const own = Object.values(e.constraints ?? {}).map((m) => `${path}: ${m}`);
    return [...own, ...flatten(e.children ?? [], here)];
  });
}
