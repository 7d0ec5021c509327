import { type DynamicModule, Injectable, Module } from '@nestjs/common';
import { ApplicationConfig, HttpAdapterHost } from '@nestjs/core';
import { ApiKeyCheck } from '../auth/api-key';
import { AuthModule } from '../auth/auth.module';
import { RequestGate } from './request-gate';

/** The one method of a Fastify instance the gate uses (Fastify is the host's, maybe absent). */
interface FastifyHooks {
  addHook(name: 'onRequest', hook: RequestGate['fastifyOnRequest']): unknown;
}

/** Where the gate goes in front of the application's request handling. */
export interface RequestGateOptions {
  /** The `path` option, normalised (`keelPathOf`). */
  path: string;
  /**
   * `adapter` (a host): the gate puts itself on the HTTP adapter as soon as the application has
   * one, ahead of everything the application registers. `app` (the standalone server): its setup
   * mounts the gate itself, after its request logging, so that a refused request is logged too.
   */
  mount: 'adapter' | 'app';
}

/**
 * Puts the gate in front of the host's body parser. Nest registers that parser in `app.init()`,
 * before any module middleware or guard; the adapter is set earlier, in `NestFactory.create` (or
 * `createNestApplication` of a testing module), and `HttpAdapterHost.init$` replays it to a
 * subscriber that comes later. Registering here is no I/O: a handler put on the adapter.
 */
@Injectable()
class RequestGateMount {
  constructor(adapterHost: HttpAdapterHost, gate: RequestGate) {
    adapterHost.init$.subscribe(() => {
      const adapter = adapterHost.httpAdapter;
      const type = adapter.getType();
      if (type === 'express') adapter.use(gate.express);
      else if (type === 'fastify') {
        adapter.getInstance<FastifyHooks>().addHook('onRequest', gate.fastifyOnRequest);
      }
      // Another platform: no gate; the controllers' guards still refuse (after its body parser).
    });
  }
}

@Module({})
export class RequestGateModule {
  static register({ path, mount }: RequestGateOptions): DynamicModule {
    return {
      module: RequestGateModule,
      imports: [AuthModule],
      providers: [
        {
          provide: RequestGate,
          inject: [ApiKeyCheck, ApplicationConfig],
          useFactory: (check: ApiKeyCheck, config: ApplicationConfig) => new RequestGate(check, () => config.getGlobalPrefix(), path),
        },
        ...(mount === 'adapter' ? [RequestGateMount] : []),
      ],
      exports: [RequestGate],
    };
  }
}
