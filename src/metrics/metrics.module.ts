import { Global, Module } from '@nestjs/common';
import { JobMetrics } from './job-metrics';

/** The app's instruments, injectable anywhere; `/metrics` lives in `MetricsHttpModule`. */
@Global()
@Module({ providers: [JobMetrics], exports: [JobMetrics] })
export class MetricsModule {}
