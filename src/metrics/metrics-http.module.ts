import { Module } from '@nestjs/common';
import { QueueModule } from '../queue/queue.module';
import { StoreModule } from '../store/store.module';
import { MetricsController } from './metrics.controller';

@Module({ imports: [StoreModule, QueueModule], controllers: [MetricsController] })
export class MetricsHttpModule {}
