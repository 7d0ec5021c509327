import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { JobHandlerRegistry } from './job-handler.registry';

/**
 * The `@JobHandler` providers and their metadata, found once by discovery. Imports nothing of
 * Keel's, so every module that reads the handlers (queue, workers, jobs, schedules, types) can import it.
 */
@Module({ imports: [DiscoveryModule], providers: [JobHandlerRegistry], exports: [JobHandlerRegistry] })
export class HandlersModule {}
