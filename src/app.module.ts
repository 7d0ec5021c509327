import { Module, type DynamicModule } from '@nestjs/common';
import type { KeelConfig } from './config/keel-config';
import { KeelModule } from './keel.module';

/**
 * The standalone server (`npm start`): `KeelModule` configured from the environment, with its
 * HTTP API. Add your own job handlers by importing your module into `imports` here (or, in your
 * own Nest application, import `KeelModule.forRoot` beside them).
 */
@Module({})
export class AppModule {
  static forRoot(config: KeelConfig, extraImports: DynamicModule['imports'] = []): DynamicModule {
    return {
      module: AppModule,
      imports: [KeelModule.forServer(config), ...extraImports],
    };
  }
}
