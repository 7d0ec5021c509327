import { Injectable, type OnModuleInit, type Type } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { plainToInstance } from 'class-transformer';
import { validate, type ValidationError } from 'class-validator';
import type { JobPayload } from '../core/job.model';
import { ConfigError } from '../config/keel-config';
import { limitProblems } from '../core/type-settings';
import { compiledCheck } from '../common/compiled-validation';
import { FeederService } from '../queue/feeder.service';
import { TypeLimits } from '../queue/type-limits';
import { JOB_HANDLER_METADATA, JobHandlerBase } from '../core/job-handler';
import { DuplicateJobHandlerError, InvalidJobHandlerError, RequestScopedJobHandlerError } from './job-handler.errors';

export interface RegisteredHandler {
  type: string;
  handler: JobHandlerBase;
  payload?: Type<object>;
}

/** Every `@JobHandler` provider of the app, found through Nest discovery at module init. */
@Injectable()
export class JobHandlerRegistry implements OnModuleInit {
  private readonly handlers = new Map<string, RegisteredHandler>();

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly feeder: FeederService,
    private readonly limits: TypeLimits,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders({ metadataKey: JOB_HANDLER_METADATA.KEY })) {
      const meta = this.discovery.getMetadataByDecorator(JOB_HANDLER_METADATA, wrapper);
      if (!meta) continue;
      const className = (wrapper.metatype as Type | undefined)?.name ?? String(wrapper.token);
      // Never skipped silently: its type would then be refused as unknown, with no word why.
      if (!wrapper.isDependencyTreeStatic()) throw new RequestScopedJobHandlerError(className, meta.type);
      if (!wrapper.instance) continue;
      const instance: unknown = wrapper.instance;
      if (!(instance instanceof JobHandlerBase)) throw new InvalidJobHandlerError(className, meta.type);
      const existing = this.handlers.get(meta.type);
      if (existing) throw new DuplicateJobHandlerError(meta.type, existing.handler.constructor.name, className);
      const problems = limitProblems(meta.concurrency, meta.rateLimit);
      if (problems.length > 0) throw new ConfigError(`${className} (@JobHandler("${meta.type}")): ${problems.join('; ')}`);
      this.handlers.set(meta.type, { type: meta.type, handler: instance as JobHandlerBase, payload: meta.payload });
      this.limits.declare(meta.type, { concurrency: meta.concurrency ?? null, rateLimit: meta.rateLimit ?? null, paused: false });
    }
    // Only jobs of these types are claimed: another version's types are left to the instances that run it.
    this.feeder.handleTypes(this.types());
  }

  get(type: string): RegisteredHandler | undefined {
    return this.handlers.get(type);
  }

  types(): string[] {
    return [...this.handlers.keys()].sort();
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
}

function flatten(errors: ValidationError[], path: string): string[] {
  return errors.flatMap((e) => {
    const here = `${path}.${e.property}`;
    const own = Object.values(e.constraints ?? {}).map((m) => `${path}: ${m}`);
    return [...own, ...flatten(e.children ?? [], here)];
  });
}
