import { Module } from '@nestjs/common';
import { StoreModule } from '../store/store.module';
import { DeliveryQueue } from './delivery-queue';
import { FeederService } from './feeder.service';
import { TypeLimits } from './type-limits';

@Module({ imports: [StoreModule], providers: [DeliveryQueue, FeederService, TypeLimits], exports: [DeliveryQueue, FeederService, TypeLimits] })
export class QueueModule {}
