import { Module } from '@nestjs/common';
import { StoreModule } from '../store/store.module';
import { DeliveryQueue } from './delivery-queue';
import { FeederService } from './feeder.service';

@Module({ imports: [StoreModule], providers: [DeliveryQueue, FeederService], exports: [DeliveryQueue, FeederService] })
export class QueueModule {}
