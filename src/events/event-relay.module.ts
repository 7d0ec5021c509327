import { Module } from '@nestjs/common';
import { StoreModule } from '../store/store.module';
import { EventRelay } from './event-relay.service';

/** Job events across the instances of a shared store, in every instance (with or without HTTP routes). */
@Module({ imports: [StoreModule], providers: [EventRelay] })
export class EventRelayModule {}
