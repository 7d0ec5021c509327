import { Module } from '@nestjs/common';
import { HandlersModule } from '../handlers/handlers.module';
import { StoreModule } from '../store/store.module';
import { DeliveryQueue } from './delivery-queue';
import { FeederService } from './feeder.service';
import { TypeLimits } from './type-limits';

/** HandlersModule: the feeder claims the handled types, the limits start from the handlers' defaults. */
@Module({
  imports: [StoreModule, HandlersModule],
  providers: [DeliveryQueue, FeederService, TypeLimits],
  exports: [DeliveryQueue, FeederService, TypeLimits],
})
export class QueueModule {}
