import { Global, Module } from '@nestjs/common';
import { JobEvents } from './job-events';

/** `JobEvents`, injectable anywhere: the store reports what it committed, subscribers read `events$`. */
@Global()
@Module({ providers: [JobEvents], exports: [JobEvents] })
export class EventsModule {}
