import { Module } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { ApiKeyCheck } from './api-key';

/** The API key check, for the request gate (`src/gate`); Keel's controllers guard themselves too (`ApiKeyGuard`). */
@Module({
  providers: [{ provide: ApiKeyCheck, inject: [KEEL_CONFIG], useFactory: (config: KeelConfig) => new ApiKeyCheck(config.apiKey) }],
  exports: [ApiKeyCheck],
})
export class AuthModule {}
