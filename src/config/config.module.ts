import { Global, Module, type DynamicModule } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from './keel-config';

/** Makes the validated configuration injectable everywhere as `KEEL_CONFIG`. */
@Global()
@Module({})
export class ConfigModule {
  static register(config: KeelConfig): DynamicModule {
    return { module: ConfigModule, providers: [{ provide: KEEL_CONFIG, useValue: config }], exports: [KEEL_CONFIG] };
  }
}
