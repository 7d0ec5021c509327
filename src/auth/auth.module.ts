import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { ApiKeyCheck } from './api-key';
import { ApiKeyGuard } from './api-key.guard';

@Module({
  providers: [
    { provide: ApiKeyCheck, inject: [KEEL_CONFIG], useFactory: (config: KeelConfig) => new ApiKeyCheck(config.apiKey) },
    { provide: APP_GUARD, useClass: ApiKeyGuard },
  ],
  exports: [ApiKeyCheck],
})
export class AuthModule {}
