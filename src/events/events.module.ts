import { Global, Module } from '@nestjs/common';
import { StoreModule } from '../store/store.module';
import { JobEvents } from './job-events';

/** `JobEvents`, injectable anywhere: the events the store's feed brings, as `events$`. */
@Global()
@Module({ imports: [StoreModule], providers: [JobEvents], exports: [JobEvents] })
export class EventsModule {}
