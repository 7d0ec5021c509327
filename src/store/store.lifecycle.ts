import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { JOBS_STORE, type JobStore } from './job-store';

/** Opens the store before anything uses it and closes it after everything else stopped. */
@Injectable()
export class StoreLifecycle implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Store');

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.store.open();
    this.logger.log(this.config.store === 'sqlite' ? `sqlite store open: ${this.config.sqliteFile}` : `${this.config.store} store open`);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.store.close();
  }
}
