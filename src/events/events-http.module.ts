import { Module } from '@nestjs/common';
import { EventsController } from './events.controller';
import { EventStream } from './event-stream';

/** `GET /v1/events`: the events of `JobEvents` as Server-Sent Events, with a replay buffer. */
@Module({ controllers: [EventsController], providers: [EventStream], exports: [EventStream] })
export class EventsHttpModule {}
