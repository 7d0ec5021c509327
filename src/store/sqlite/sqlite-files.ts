import type Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { StoreUnavailable } from '../../core/job.errors';
import type { KeelContextLog } from '../../logging/keel-log';
import { StoreOwnershipError } from '../store.errors';

/** Which file a path names: a file deleted, or another renamed over it, has another identity. */
interface FileIdentity {
  dev: bigint;
  ino: bigint;
}

/**
 * Takes the file for this process. EXCLUSIVE before WAL: the first write takes the file lock and
 * this connection keeps it until it closes (or the process dies), so a second process cannot
 * open the file.
 */
export function own(db: Database.Database, file: string): void {
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.exec('BEGIN IMMEDIATE; COMMIT');
  } catch (err) {
    db.close();
    if (isBusy(err)) {
      throw new StoreOwnershipError(`SQLITE_FILE ${file} is in use by another process: only one Keel process may own it`);
    }
    throw err;
  }
}

/**
 * The readiness probe's write (table `keel_probe`): a row one page long, inserted before the last
 * one is deleted, so that it needs a new page as the failed writes of a full disk did.
 */
const PROBE_SQL = {
  insert: `INSERT INTO keel_probe (at, filler) VALUES (?, zeroblob(?))`,
  prune: `DELETE FROM keel_probe WHERE id < ?`,
} as const;

/** The probe write on `db`, its statements prepared once. */
export function probeWrite(db: Database.Database): () => void {
  const insert = db.prepare(PROBE_SQL.insert);
  const prune = db.prepare(PROBE_SQL.prune);
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  return () => {
    const { lastInsertRowid } = insert.run(Date.now(), pageSize);
    prune.run(lastInsertRowid);
  };
}

/**
 * The database file and its WAL as an open store found them: checked before every commit and
 * every ping, so that nothing is acknowledged into a file that is gone.
 */
export class SqliteFiles {
  /** Whether the WAL was emptied into the database file after the files went (done once). */
  private walSecured = false;

  private constructor(
    private readonly db: Database.Database,
    private readonly file: string,
    private readonly identity: { db: FileIdentity; wal: FileIdentity },
    /** The WAL, opened once more: syncing it syncs SQLite's writes to it (fsync is per file, not per descriptor). */
    private readonly wal: FileHandle,
    private readonly logger: KeelContextLog,
  ) {}

  /**
   * The files as `own` and the migrations left them: locking mode EXCLUSIVE keeps the WAL open, and
   * its file present, until the store closes. Closes `db` when either is missing.
   */
  static async watch(db: Database.Database, file: string, logger: KeelContextLog): Promise<SqliteFiles> {
    const dbFile = identityOf(file);
    const walFile = identityOf(`${file}-wal`);
    if (!dbFile || !walFile) {
      db.close();
      throw new Error(`SQLITE_FILE ${file}: the database file or its WAL is missing right after opening it`);
    }
    return new SqliteFiles(db, file, { db: dbFile, wal: walFile }, await openFile(`${file}-wal`, 'r'), logger);
  }

  /** An `fdatasync` of the WAL, on libuv's thread pool. */
  async datasync(): Promise<void> {
    await this.wal.datasync();
  }

  /**
   * Throws StoreUnavailable when the database file or its WAL is no longer the file this store
   * opened (deleted, or another renamed over it): a commit into it would be acknowledged into a
   * file that is gone. Two stat calls, a few microseconds (docs/decisions.md).
   */
  check(): void {
    const wal = `${this.file}-wal`;
    for (const [path, opened] of [
      [this.file, this.identity.db],
      [wal, this.identity.wal],
    ] as const) {
      const now = identityOf(path);
      if (now && now.dev === opened.dev && now.ino === opened.ino) continue;
      throw new StoreUnavailable(
        `the SQLite file ${path} was ${now ? 'replaced' : 'deleted'} under the running process: ` +
          'nothing more is written; restart Keel once the file is back in place (README "Recovery")',
      );
    }
  }

  /** The readiness probe's `check`: once the files went, the WAL is secured before it throws. */
  checkForPing(): void {
    try {
      this.check();
    } catch (err) {
      this.secureWal();
      throw err;
    }
  }

  /**
   * Closes the WAL's handle, then the connection. Closing checkpoints the WAL into the database
   * file, with a sync: nothing is left unsynced. SQLite then deletes the WAL by its path, whatever
   * file is there now; when the files are no longer the ones opened, the connection is left open
   * instead (see `leaveOpen`).
   */
  async close(): Promise<void> {
    await this.wal.close();
    if (this.areOwn()) this.db.close();
    else this.leaveOpen();
  }

  /** Whether the database file and WAL at the path are still the ones this store opened. */
  private areOwn(): boolean {
    try {
      this.check();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The close of a connection whose files were moved or replaced. SQLite's own close would delete
   * `<file>-wal` by name once it checkpointed: with only the WAL moved away (SQLite checks that
   * the database file is still in place, by inode only), that deletes another's WAL now at the
   * path. So what the WAL holds is emptied into this store's own database file through the open
   * handles, and the connection is kept, never closed: the process ends it when it exits, and an
   * exit closes no SQLite connection (better-sqlite3 closes those left open only when Node tears
   * down an event loop that ran empty, which the standalone server never waits for).
   */
  private leaveOpen(): void {
    this.secureWal();
    LEFT_OPEN.push(this.db);
    this.logger.warn(
      `the SQLite file ${this.file} or its WAL was moved or replaced while open: the connection is left ` +
        'for the process exit to close, so that the file now at the path is not deleted',
    );
  }

  /**
   * Once the files went: empties the WAL into the database file through the open handles (a
   * checkpoint). When only the WAL went, what it held, every commit acknowledged so far, is then in
   * the database file, which survives a restart; when the database file went, the WAL left at the
   * path no longer holds frames that a restart would replay onto another file.
   */
  secureWal(): void {
    if (this.walSecured || this.db.inTransaction) return;
    if (this.areOwn()) return;
    this.walSecured = true;
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // nothing more can be done here; the store answers 503 either way
    }
  }
}

/** Connections whose files were replaced: held here so that neither a close nor their collection deletes what is at the path now. */
const LEFT_OPEN: Database.Database[] = [];

function identityOf(path: string): FileIdentity | undefined {
  const stat = statSync(path, { throwIfNoEntry: false, bigint: true });
  return stat && { dev: stat.dev, ino: stat.ino };
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}
