import type { QueryResult, QueryResultRow } from 'pg';
import { ConcurrentChange, JobNotFound, StoreUnavailable } from '../../core/job.errors';
import type { JobEvent } from '../../core/job-state-machine';
import type { Job } from '../../core/job.model';
import type { Commit } from '../commit-stream';
import type { TransitionGuard, WriteDurability } from '../job-store';
import type { SyncSchedule } from '../sync-schedule';
import { planTransition, type PlannedTransition } from '../plan-transition';
import { fromRow, jsonOrNull, type JobRow } from './pg-rows';
import { PG_SQL } from './pg-statements';
import { TurnGroups } from './turn-groups';

/** Compare-and-sets tried for one transition that keeps losing races, before ConcurrentChange. */
const CAS_ATTEMPTS = 3;
/** The most transitions in one group: one statement stays bounded (parameters, row locks held). */
const MAX_GROUP_SIZE = 500;

/** Ids in the one form the database returns them; other spellings go through the single path. */
const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What the groups need from the store. `query` maps connection faults to StoreUnavailable. */
export interface TransitionDb {
  query<R extends QueryResultRow>(sql: string, params: unknown[]): Promise<QueryResult<R>>;
  /** The NOTIFY parameters every transition statement ends with: work channel, this store's name, cancel channel. */
  notifyParams(): unknown[];
  /** The `synchronous_commit` of a statement that commits writes of this durability ('on' or 'off'). */
  synchronousCommit(durability: WriteDurability): 'on' | 'off';
  /** Told of every commit: one made with synchronous_commit on is a sync. */
  syncSchedule(): SyncSchedule;
  /** The changes a commit made, before their callers are answered. */
  committed(batch: readonly Commit[]): void;
}

interface Asked {
  id: string;
  /** The id as the database spells it (lower case): how rows and returned ids are matched. */
  key: string;
  event: JobEvent;
  guard?: TransitionGuard;
  durability: WriteDurability;
  /** Compare-and-sets lost so far. */
  lost: number;
  resolve: (job: Job) => void;
  reject: (err: unknown) => void;
}

interface Planned {
  asked: Asked;
  plan: PlannedTransition;
  /** The parameters of `applyTransition` for this job. */
  params: unknown[];
}

/** The columns the compare-and-set requires to be unchanged, as read. */
type CasRow = Pick<JobRow, 'id' | 'state' | 'attempts' | 'updated_at' | 'owner'>;

/**
 * The row a caller passed as `guard.expected`, as the compare-and-set compares it, with the job it
 * is; none once a compare-and-set on it was lost (the row changed: it is read from then on).
 */
function expectedOf(asked: Asked): (CasRow & { job: Job }) | undefined {
  const job = asked.guard?.expected;
  if (!job || asked.lost > 0 || asked.guard?.owner === undefined) return undefined;
  return { id: asked.key, state: job.state, attempts: job.attempts, updated_at: job.updatedAt, owner: asked.guard.owner, job };
}

/**
 * Group commit of state changes. Every transition asked for during one turn of the event loop
 * is applied with the others: one read of all their rows, the state machine per job, and one
 * compare-and-set statement for all of them (each job's expected row and its new values, one
 * array per column), so one commit (one WAL flush) serves the group: two round trips, however
 * many jobs. A caller's promise settles only once that statement has committed.
 *
 * Each job keeps the guarantees of a transition applied alone: its compare-and-set has the same
 * conditions, one that lost a race is read and tried again (ConcurrentChange after
 * CAS_ATTEMPTS), and a refusal of the state machine rejects that caller only. A job is in at
 * most one running group, and its transitions are applied in the order they were asked for.
 * Nothing is kept between groups: every plan is made on the row as read for it.
 */
export class PgTransitionGroups extends TurnGroups<Asked> {
  /** Keys of the jobs in a running group: a later transition of one waits for it to settle. */
  private readonly busy = new Set<string>();
  /** Queries sent for transitions so far (reads and compare-and-sets, their NOTIFYs included). */
  roundTrips = 0;
  /** Statements that changed jobs, by the `synchronous_commit` the server committed them with. */
  readonly commitsBySetting = { on: 0, off: 0 };

  constructor(private readonly db: TransitionDb) {
    super();
  }

  transition(id: string, event: JobEvent, guard: TransitionGuard | undefined, durability: WriteDurability): Promise<Job> {
    const promise = new Promise<Job>((resolve, reject) => {
      const asked: Asked = { id, key: id.toLowerCase(), event, guard, durability, lost: 0, resolve, reject };
      if (CANONICAL_UUID.test(id)) {
        this.queued.push(asked);
        this.schedule();
      } else {
        // The database may accept other spellings of a uuid, or refuse the id: exactly as before.
        this.alone(asked).then(resolve, reject);
      }
    });
    return this.track(promise);
  }

  /**
   * The next group, in the order asked: at most one transition per job, none of a job in a
   * running group, at most MAX_GROUP_SIZE. What is left stays queued, in order.
   */
  protected take(): Asked[] {
    const group: Asked[] = [];
    const rest: Asked[] = [];
    const taken = new Set<string>();
    for (const asked of this.queued) {
      if (group.length < MAX_GROUP_SIZE && !this.busy.has(asked.key) && !taken.has(asked.key)) {
        group.push(asked);
        taken.add(asked.key);
      } else {
        rest.push(asked);
      }
    }
    this.queued = rest;
    for (const key of taken) this.busy.add(key);
    return group;
  }

  /** Settles one caller and frees its job for its next transition. Never throws. */
  private settle(asked: Asked, outcome: { job: Job } | { error: unknown }): void {
    this.busy.delete(asked.key);
    if ('job' in outcome) asked.resolve(outcome.job);
    else asked.reject(outcome.error);
    this.schedule();
  }

  /** Applies a group; settles every caller of it, and never rejects. */
  protected async apply(group: Asked[]): Promise<void> {
    const open = new Set(group);
    const settle = (asked: Asked, outcome: { job: Job } | { error: unknown }) => {
      if (open.delete(asked)) this.settle(asked, outcome);
    };
    try {
      const planned: Planned[] = [];
      // A caller that has the row as the store last gave it (a worker's outcome) is planned on
      // that; the others' rows are read, in one query.
      const unread = group.filter((asked) => !expectedOf(asked));
      let rows: JobRow[] = [];
      if (unread.length > 0) {
        try {
          rows = (await this.query<JobRow>(PG_SQL.getJobs, [unread.map((a) => a.key)])).rows;
        } catch (error) {
          return await this.failed(group, error, settle);
        }
      }
      const byKey = new Map(rows.map((row) => [row.id, row]));
      for (const asked of group) {
        const expected = expectedOf(asked);
        const row = expected ?? byKey.get(asked.key);
        if (!row) {
          settle(asked, { error: new JobNotFound(asked.id) });
          continue;
        }
        try {
          const plan = planTransition(expected ? expected.job : fromRow(row as JobRow), row.owner, asked.event, asked.guard);
          planned.push({ asked, plan, params: casParams(row, plan) });
        } catch (error) {
          settle(asked, { error });
        }
      }
      if (planned.length === 0) return;
      // Rows in id order: two groups touching the same jobs lock them in the same order.
      planned.sort((a, b) => (a.asked.key < b.asked.key ? -1 : 1));

      let applied: Set<string>;
      try {
        // One acknowledged change makes the group's commit a synced one; it covers the others.
        const durability = planned.some((p) => p.asked.durability === 'acknowledged') ? 'acknowledged' : 'worker';
        const columns = [...planned[0].params.map((_, i) => planned.map((p) => p.params[i])), ...this.db.notifyParams()];
        const rows = await this.commit<{ id: string; progress: Job['progress'] }>(PG_SQL.applyTransitions, columns, durability);
        applied = new Set(rows.map((r) => r.id));
        // A plan made on a carried row has the progress of its start: the row's is the one written since.
        const progress = new Map(rows.map((r) => [r.id, r.progress]));
        for (const p of planned) if (progress.has(p.asked.key)) p.plan.next.progress = progress.get(p.asked.key) ?? null;
      } catch (error) {
        return await this.failed(
          planned.map((p) => p.asked),
          error,
          settle,
        );
      }

      this.db.committed(
        planned
          .filter((p) => applied.has(p.asked.key))
          .map((p) => ({ kind: 'transition', from: p.plan.change.from, event: p.asked.event.type, job: p.plan.next })),
      );
      const retried: Asked[] = [];
      for (const p of planned) {
        if (applied.has(p.asked.key)) {
          settle(p.asked, { job: p.plan.next });
        } else if (++p.asked.lost >= CAS_ATTEMPTS) {
          settle(p.asked, { error: new ConcurrentChange(p.asked.id) });
        } else {
          retried.push(p.asked);
        }
      }
      if (retried.length > 0) {
        // Read again in the next group, ahead of any later transition of the same jobs.
        for (const asked of retried) {
          open.delete(asked);
          this.busy.delete(asked.key);
        }
        this.queued.unshift(...retried);
        this.schedule();
      }
    } catch (error) {
      // Not expected (every step above catches its own): no caller is left waiting anyway.
      for (const asked of [...open]) settle(asked, { error });
    }
  }

  /**
   * A group's statement failed, so none of it applied. A connection fault is every caller's
   * answer. Any other error may come from one job's values (text the database refuses, say) or
   * from the grouping itself (a deadlock with another instance's group): each job is then
   * applied alone, so that one job's error is its caller's only.
   */
  private async failed(group: Asked[], error: unknown, settle: (asked: Asked, outcome: { job: Job } | { error: unknown }) => void): Promise<void> {
    if (error instanceof StoreUnavailable || group.length === 1) {
      for (const asked of group) settle(asked, { error });
      return;
    }
    await Promise.all(
      group.map((asked) =>
        this.alone(asked).then(
          (job) => settle(asked, { job }),
          (err: unknown) => settle(asked, { error: err }),
        ),
      ),
    );
  }

  /** One transition on its own: read, state machine, compare-and-set; again while it loses a race. */
  private async alone(asked: Asked): Promise<Job> {
    for (;;) {
      const { rows } = await this.query<JobRow>(PG_SQL.getJob, [asked.id]);
      if (!rows[0]) throw new JobNotFound(asked.id);
      const row = rows[0];
      // (read here even when the caller had the row: this path is the fallback of a failed group)
      const plan = planTransition(fromRow(row), row.owner, asked.event, asked.guard);
      const applied = await this.commit(PG_SQL.applyTransition, [...casParams(row, plan), ...this.db.notifyParams()], asked.durability);
      if (applied.length === 1) {
        this.db.committed([{ kind: 'transition', from: plan.change.from, event: asked.event.type, job: plan.next }]);
        return plan.next;
      }
      if (++asked.lost >= CAS_ATTEMPTS) throw new ConcurrentChange(asked.id);
    }
  }

  /**
   * A compare-and-set statement with the `synchronous_commit` of `durability`; the schedule is told
   * of its commit as the server reports the setting (a statement that changed nothing reports none).
   */
  private async commit<R extends QueryResultRow>(
    sql: string,
    params: unknown[],
    durability: WriteDurability,
  ): Promise<Array<R & { synchronous_commit: string }>> {
    const schedule = this.db.syncSchedule();
    const mark = schedule.mark();
    const { rows } = await this.query<R & { synchronous_commit: string }>(sql, [...params, this.db.synchronousCommit(durability)]);
    const setting = rows[0]?.synchronous_commit;
    if (setting === 'on') {
      this.commitsBySetting.on += 1;
      schedule.syncedThrough(mark);
    } else if (setting === 'off') {
      this.commitsBySetting.off += 1;
      schedule.committedUnsynced();
    }
    return rows;
  }

  private query<R extends QueryResultRow>(sql: string, params: unknown[]): Promise<QueryResult<R>> {
    this.roundTrips += 1;
    return this.db.query<R>(sql, params);
  }
}

/**
 * The parameters of `applyTransition` (and one row of the arrays of `applyTransitions`): the
 * change, then the row as it was read, which the compare-and-set requires to be unchanged.
 */
export function casParams(row: CasRow, plan: PlannedTransition): unknown[] {
  const next = plan.next;
  return [
    row.id,
    next.state,
    next.attempts,
    next.runAt,
    next.startedAt,
    next.finishedAt,
    jsonOrNull(next.result),
    next.lastError,
    next.updatedAt,
    plan.owner,
    row.state,
    row.attempts,
    row.updated_at,
    row.owner,
    next.cancelRequestedAt,
    plan.change.patch.progress === null,
  ];
}
