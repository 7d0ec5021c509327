import type { PoolClient } from 'pg';
import { BacklogFull, StoreUnavailable } from '../../core/job.errors';
import { newJobRecord, type Job, type NewJob } from '../../core/job.model';
import { jsonOrNull } from './pg-rows';
import { JOB_COLUMNS, PG_SQL, prepared, preparedAs, type PgChannels } from './pg-statements';
import { TurnGroups } from './turn-groups';

/** The most submissions in one group. */
export const MAX_GROUP_SUBMISSIONS = 1_000;
/** The most jobs in one group (a submission holds up to 1,000): one statement stays bounded. */
export const MAX_GROUP_JOBS = 5_000;

/** What the groups need from the store. Both map connection faults to StoreUnavailable. */
export interface InsertDb {
  /** One submission in a transaction of its own: the backlog check, insert and NOTIFY. */
  insertAlone(records: Job[], jobs: NewJob[], maxBacklog: number): Promise<Job[]>;
  /**
   * `work` between BEGIN and COMMIT on one connection. A connection whose transaction state is
   * unknown (a fault, a timed-out statement) is destroyed, so that transaction never commits.
   */
  inTransaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T>;
  /** What the NOTIFY after the jobs names. */
  readonly channels: PgChannels;
}

interface Submission {
  jobs: NewJob[];
  records: Job[];
  maxBacklog: number;
  resolve: (jobs: Job[]) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit of submissions. The keyless submissions asked for during one turn of the event
 * loop share one transaction: one backlog count, one insert of the jobs of all admitted ones,
 * one NOTIFY, one commit. A round trip costs more CPU here than the work of a submission does:
 * when all of them fit, the count, insert and NOTIFY are one statement (`SUBMIT_JOBS`, its limit
 * the tightest of the group's), so a group takes two round trips (BEGIN pipelined with it, then
 * COMMIT: see `PgJobStore.inTransaction`), as one submission alone does. When not all fit, that statement stores nothing and answers the count:
 * the ones that fit are then inserted by a second statement, in the same transaction.
 *
 * Each submission keeps the guarantees it has alone: all of its jobs or none, and its caller
 * answered only after the commit. Submissions are admitted in the order asked, each against the
 * count plus the jobs of the ones admitted before it; one that does not fit is refused alone.
 *
 * A submission with an idempotency key goes alone: a key already taken must fail its own
 * submission, not the group. Keyless jobs have fresh ids, so a group's insert has nothing of its
 * own to conflict on; when it fails all the same (and not for a lost connection), each submission
 * is tried again alone, so that an error belongs to its own caller only.
 */
export class PgInsertGroups extends TurnGroups<Submission> {
  /** Transactions begun for submissions so far, grouped or alone. */
  transactions = 0;

  constructor(private readonly db: InsertDb) {
    super();
  }

  insert(jobs: NewJob[], maxBacklog: number): Promise<Job[]> {
    const promise = new Promise<Job[]>((resolve, reject) => {
      const submission: Submission = { jobs, records: jobs.map(newJobRecord), maxBacklog, resolve, reject };
      // An empty submission goes alone too: it answers exactly as before, even past the backlog.
      if (jobs.length === 0 || jobs.some((job) => job.idempotencyKey !== null && job.idempotencyKey !== undefined)) {
        this.alone(submission).then(resolve, reject);
      } else {
        this.queued.push(submission);
        this.schedule();
      }
    });
    return this.track(promise);
  }

  /** The next group, in the order asked: at most MAX_GROUP_SUBMISSIONS and MAX_GROUP_JOBS. */
  protected take(): Submission[] {
    let n = 0;
    let jobs = 0;
    while (n < this.queued.length && n < MAX_GROUP_SUBMISSIONS && (n === 0 || jobs + this.queued[n].records.length <= MAX_GROUP_JOBS)) {
      jobs += this.queued[n].records.length;
      n += 1;
    }
    return this.queued.splice(0, n);
  }

  /** Applies a group; settles every caller of it, and never rejects. */
  protected async apply(group: Submission[]): Promise<void> {
    try {
      if (group.length === 1) {
        // Alone, the count, insert and NOTIFY are one statement: a round trip fewer.
        await this.alone(group[0]).then(group[0].resolve, group[0].reject);
        return;
      }
      let outcome: { admitted: Submission[]; refused: Array<{ submission: Submission; backlog: number }> };
      try {
        this.transactions += 1;
        outcome = await this.db.inTransaction(async (client) => {
          // Each is admitted against the count plus the jobs before it: all of them fit when the
          // count is at most the tightest `maxBacklog - (its jobs and the ones before it)`.
          let total = 0;
          let limit = Number.MAX_SAFE_INTEGER;
          for (const submission of group) {
            total += submission.records.length;
            limit = Math.min(limit, submission.maxBacklog - total);
          }
          const all = submitJobsParams(
            group.flatMap((s) => s.records),
            group.flatMap((s) => s.jobs),
            limit + total,
            this.db.channels,
          );
          const counted = (await client.query<{ pending: number; inserted: number }>(prepared(SUBMIT_JOBS, all))).rows[0];
          if (counted.inserted === total) return { admitted: group, refused: [] };
          // Not all fit, and nothing was inserted: each in the order asked, against the count.
          let backlog = counted.pending;
          const admitted: Submission[] = [];
          const refused: Array<{ submission: Submission; backlog: number }> = [];
          for (const submission of group) {
            if (backlog + submission.records.length <= submission.maxBacklog) {
              admitted.push(submission);
              backlog += submission.records.length;
            } else {
              refused.push({ submission, backlog });
            }
          }
          if (admitted.length > 0) {
            const params = insertJobsParams(
              admitted.flatMap((s) => s.records),
              admitted.flatMap((s) => s.jobs),
              this.db.channels,
            );
            await client.query(prepared(INSERT_JOBS, params));
          }
          return { admitted, refused };
        });
      } catch (error) {
        // Nothing of the group committed. A lost connection is every caller's answer; any other
        // error may be one submission's values: each is tried alone, and keeps its own answer.
        if (error instanceof StoreUnavailable) {
          for (const submission of group) submission.reject(error);
        } else {
          await Promise.all(group.map((submission) => this.alone(submission).then(submission.resolve, submission.reject)));
        }
        return;
      }
      for (const submission of outcome.admitted) submission.resolve(submission.records);
      for (const { submission, backlog } of outcome.refused) submission.reject(new BacklogFull(backlog, submission.maxBacklog));
    } catch (error) {
      // Not expected (every step above catches its own): no caller is left waiting anyway.
      for (const submission of group) submission.reject(error);
    }
  }

  private alone(submission: Submission): Promise<Job[]> {
    this.transactions += 1;
    return this.db.insertAlone(submission.records, submission.jobs, submission.maxBacklog);
  }
}

/** Jobs to insert, one array per column (in `JOB_COLUMNS` order): $1 … $20, see `insertColumns`. */
const UNNEST_JOBS = `unnest($1::uuid[], $2::text[], $3::json[], $4::text[], $5::int[], $6::int[], $7::int[], $8::int[], $9::int[],
                             $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::json[], $16::text[],
                             $17::text[], $18::text[], $19::text[], $20::text[])`;

/**
 * The stats of the jobs a statement inserts (`inserted`: their type and created_at), counted per
 * minute and type by the same statement: insert-only rows, no row shared with another writer.
 */
const COUNT_CREATED = `
    created AS (
      INSERT INTO keel_stats (minute, type, metric, bucket, n)
      SELECT created_at / 60000 * 60000, type, 'created', 0, count(*) FROM inserted GROUP BY 1, 2
    )`;

/**
 * A whole submission in one statement and one round trip: the backlog check, the insert of all
 * its jobs (one array per column) and, when any was inserted, the NOTIFY; all of it or nothing.
 * The count and the insert see one snapshot.
 */
export const SUBMIT_JOBS = preparedAs(
  'submitJobs',
  `
    WITH backlog AS (${PG_SQL.countPending}),
    inserted AS (
      INSERT INTO keel_jobs (${JOB_COLUMNS})
      SELECT u.* FROM ${UNNEST_JOBS} AS u, backlog
       WHERE backlog.n + $21::int <= $22::int
      RETURNING type, created_at
    ),${COUNT_CREATED}
    SELECT backlog.n AS pending, (SELECT count(*)::int FROM inserted) AS inserted,
           CASE WHEN EXISTS (SELECT 1 FROM inserted) THEN pg_notify($23, $24) END AS notified
      FROM backlog`,
);

/** The parameters of `SUBMIT_JOBS`: the columns, $21 the number of jobs, $22 MAX_BACKLOG, $23 the work channel, $24 this store's name. */
export function submitJobsParams(records: Job[], jobs: NewJob[], maxBacklog: number, channels: PgChannels): unknown[] {
  return [...insertColumns(records, jobs), records.length, maxBacklog, channels.work, channels.notifier];
}

/** The jobs of every admitted submission of a group (or a schedule's job), and the NOTIFY, in one statement. */
export const INSERT_JOBS = preparedAs(
  'insertJobs',
  `
    WITH inserted AS (
      INSERT INTO keel_jobs (${JOB_COLUMNS})
      SELECT u.* FROM ${UNNEST_JOBS} AS u
      RETURNING type, created_at
    ),${COUNT_CREATED}
    SELECT CASE WHEN EXISTS (SELECT 1 FROM inserted) THEN pg_notify($21, $22) END AS notified`,
);

/** The parameters of `INSERT_JOBS`: the columns, $21 the work channel, $22 this store's name. */
export function insertJobsParams(records: Job[], jobs: NewJob[], channels: Pick<PgChannels, 'work' | 'notifier'>): unknown[] {
  return [...insertColumns(records, jobs), channels.work, channels.notifier];
}

/** $1 … $20 of the insert statements: one array per column, in `JOB_COLUMNS` order. */
function insertColumns(records: Job[], jobs: NewJob[]): unknown[][] {
  const col = <T>(pick: (job: Job, i: number) => T) => records.map(pick);
  return [
    col((j) => j.id),
    col((j) => j.type),
    col((j) => JSON.stringify(j.payload)),
    col((j) => j.state),
    col((j) => j.priority),
    col((j) => j.attempts),
    col((j) => j.maxAttempts),
    col((j) => j.backoffMs),
    col((j) => j.timeoutMs),
    col((j) => j.runAt),
    col((j) => j.createdAt),
    col((j) => j.updatedAt),
    col((j) => j.startedAt),
    col((j) => j.finishedAt),
    col((j) => jsonOrNull(j.result)),
    col((j) => j.lastError),
    col((j) => j.idempotencyKey),
    col((_j, i) => jobs[i].requestHash ?? null),
    col(() => null),
    col((j) => j.traceContext ?? null),
  ];
}
