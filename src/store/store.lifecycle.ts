import { Inject, Injectable, Optional, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { ConfigError, KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { LifecycleService } from '../lifecycle/lifecycle.service';
import { JOBS_STORE, type JobStore } from './job-store';
import { SHARED_STORE, type SharedStore } from './shared-store';
import { StoreOwnershipError } from './store.errors';
import { type KeelContextLog, KeelLog } from '../logging/keel-log';

/** Opens the store before anything uses it and closes it after everything else stopped. */
@Injectable()
export class StoreLifecycle implements OnModuleInit, OnApplicationShutdown {
  private readonly logger: KeelContextLog;

  constructor(
    @Inject(JOBS_STORE) private readonly store: JobStore,
    @Inject(KEEL_CONFIG) private readonly config: KeelConfig,
    private readonly lifecycle: LifecycleService,
    log: KeelLog,
    @Optional() @Inject(SHARED_STORE) private readonly shared?: SharedStore,
  ) {
    this.logger = log.for('Store');
  }

  async onModuleInit(): Promise<void> {
    try {
      await this.store.open();
    } catch (err) {
      // A file that cannot be created or is not a Keel database is a bad SQLITE_FILE: one line naming it.
      if (this.config.store === 'sqlite' && !(err instanceof StoreOwnershipError) && !(err instanceof ConfigError)) {
        throw new ConfigError(`SQLITE_FILE ${this.config.sqliteFile} cannot be used: ${(err as Error).message}`);
      }
      if (this.config.store === 'postgres') {
        throw new ConfigError(`DATABASE_URL: cannot open the PostgreSQL store: ${(err as Error).message}`);
      }
      throw err;
    }
    this.logger.log(
      this.config.store === 'sqlite' ? `sqlite store open: ${this.config.sqliteFile}` : `${this.config.store} store open as ${this.config.owner}`,
    );
  }

  /** Runs after the workers stopped: this process's claims and lease go, so others need not wait for it. */
  async onApplicationShutdown(): Promise<void> {
    try {
      await this.store.releaseClaims(this.config.owner);
      if (this.lifecycle.leaseMustExpire) this.logger.warn('the lease is left to expire: handlers that ignore their AbortSignal were still running');
      else await this.shared?.dropLease(this.config.owner);
    } catch (err) {
      this.logger.warn(`could not release this instance's claims and lease; others recover them when it expires: ${(err as Error).message}`);
    }
    await this.store.close();
  }
}
