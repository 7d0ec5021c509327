import { Global, Module } from '@nestjs/common';
import { StoreModule } from '../store/store.module';
import { JobCounters } from './job-counters';
import { JobMetrics } from './job-metrics';

/** The app's instruments, injectable anywhere, and the counters kept from the store's commits; `/metrics` lives in `MetricsHttpModule`. */
@Global()
@Module({ imports: [StoreModule], providers: [JobMetrics, JobCounters], exports: [JobMetrics] })
export class MetricsModule {}
