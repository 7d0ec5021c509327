import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { KeelHealth } from './keel-health';

/**
 * Keel in a host's `@nestjs/terminus` health check (docs/embedding.md "Health in your
 * application"), imported from `keel/terminus` so that an application without terminus never loads
 * it. Provide it in the module that imports `TerminusModule`; `isHealthy()` is up when
 * `KeelHealth.check()` says ready, down with its reason otherwise.
 */
@Injectable()
export class KeelHealthIndicator {
  constructor(
    private readonly keel: KeelHealth,
    private readonly indicators: HealthIndicatorService,
  ) {}

  async isHealthy<const Key extends string = 'keel'>(key: Key = 'keel' as Key): Promise<HealthIndicatorResult<Key>> {
    const indicator = this.indicators.check(key);
    const readiness = await this.keel.check();
    return readiness.ready ? indicator.up() : indicator.down({ reason: readiness.status, message: readiness.message });
  }
}
