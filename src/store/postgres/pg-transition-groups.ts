import type { QueryResult, QueryResultRow } from 'pg';
import { ConcurrentChange, JobNotFound, StoreUnavailable } from '../../core/job.errors';
import type { JobEvent } from '../../core/job-state-machine';
import type { Job } from '../../core/job.model';
import type { Commit } from '../commit-stream';
import type { TransitionGuard, WriteDurability } from '../job-store';
import type { SyncSchedule } from '../sync-schedule';
import { planTransition, type PlannedTransition } from '../plan-transition';
import { statOf } from '../../core/job-stats.model';
import { keptInJobRow } from '../../core/attempt.model';
import { fromRow, jsonOrNull, type JobRow } from './pg-rows';
import { durability, PG_SQL, preparedAs, type PgChannels } from './pg-statements';
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
  /** What the NOTIFYs of every transition statement name. */
  readonly channels: PgChannels;
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

/** Answers a caller of the group under way, once. */
type Settle = (asked: Asked, outcome: { job: Job } | { error: unknown }) => void;

interface Planned {
  asked: Asked;
  plan: PlannedTransition;
  /** The compare-and-set's parameters for this job: see `casParams`. */
  cas: unknown[];
}

/** The columns the compare-and-set requires to be unchanged, as read. */
type CasRow = Pick<JobRow, 'id' | 'state' | 'attempts' | 'updated_at' | 'owner' | 'cancel_requested_at'>;

/**
 * The row a caller passed as `guard.expected`, as the compare-and-set compares it, with the job it
 * is; none once a compare-and-set on it was lost (the row changed: it is read from then on).
 */
function expectedOf(asked: Asked): (CasRow & { job: Job }) | undefined {
  const job = asked.guard?.expected;
  if (!job || asked.lost > 0 || asked.guard?.owner === undefined) return undefined;
  return {
    id: asked.key,
    state: job.state,
    attempts: job.attempts,
    updated_at: job.updatedAt,
    owner: asked.guard.owner,
    cancel_requested_at: job.cancelRequestedAt,
    job,
  };
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
    const settle: Settle = (asked, outcome) => {
      if (open.delete(asked)) this.settle(asked, outcome);
    };
    try {
      const planned = await this.plan(group, settle);
      if (planned.length === 0) return;
      const applied = await this.applyPlanned(planned, settle);
      if (!applied) return;
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
      // Not expected (every step catches its own): no caller is left waiting anyway.
      for (const asked of [...open]) settle(asked, { error });
    }
  }

  /**
   * The state machine's plan for each caller, in id order. A caller that has the row as the store
   * last gave it (a worker's outcome) is planned on that; the others' rows are read, in one query.
   * A caller whose job is missing or whose event does not apply is answered here.
   */
  private async plan(group: Asked[], settle: Settle): Promise<Planned[]> {
    const unread = group.filter((asked) => !expectedOf(asked));
    let rows: JobRow[] = [];
    if (unread.length > 0) {
      try {
        rows = (await this.query<JobRow>(PG_SQL.getJobs, [unread.map((a) => a.key)])).rows;
      } catch (error) {
        await this.failed(group, error, settle);
        return [];
      }
    }
    const byKey = new Map(rows.map((row) => [row.id, row]));
    const planned: Planned[] = [];
    for (const asked of group) {
      const expected = expectedOf(asked);
      const row = expected ?? byKey.get(asked.key);
      if (!row) {
        settle(asked, { error: new JobNotFound(asked.id) });
        continue;
      }
      try {
        const plan = planTransition(expected ? expected.job : fromRow(row as JobRow), row.owner, asked.event, asked.guard);
        planned.push({ asked, plan, cas: casParams(row, plan) });
      } catch (error) {
        settle(asked, { error });
      }
    }
    // Rows in id order: two groups touching the same jobs lock them in the same order.
    return planned.sort((a, b) => (a.asked.key < b.asked.key ? -1 : 1));
  }

  /**
   * The group's compare-and-sets in one statement; the ids it applied, or none when the statement
   * failed (then every caller was answered, or applied alone: see `failed`).
   */
  private async applyPlanned(planned: Planned[], settle: Settle): Promise<Set<string> | undefined> {
    try {
      // One acknowledged change makes the group's commit a synced one; it covers the others.
      const durability = planned.some((p) => p.asked.durability === 'acknowledged') ? 'acknowledged' : 'worker';
      const params = applyTransitionsParams(
        planned.map((p) => p.cas),
        this.db.channels,
        this.db.synchronousCommit(durability),
        attemptParams(planned.map((p) => p.plan)),
        statParams(
          planned.map((p) => p.plan),
          planned.map((p) => p.asked.event.type),
        ),
      );
      const rows = await this.commit<{ id: string; progress: Job['progress'] }>(APPLY_TRANSITIONS, params);
      // A plan made on a carried row has the progress of its start: the row's is the one written since.
      const progress = new Map(rows.map((r) => [r.id, r.progress]));
      for (const p of planned) if (progress.has(p.asked.key)) p.plan.next.progress = progress.get(p.asked.key) ?? null;
      return new Set(rows.map((r) => r.id));
    } catch (error) {
      await this.failed(
        planned.map((p) => p.asked),
        error,
        settle,
      );
      return undefined;
    }
  }

  /**
   * A group's statement failed, so none of it applied. A connection fault is every caller's
   * answer. Any other error may come from one job's values (text the database refuses, say) or
   * from the grouping itself (a deadlock with another instance's group): each job is then
   * applied alone, so that one job's error is its caller's only.
   */
  private async failed(group: Asked[], error: unknown, settle: Settle): Promise<void> {
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
      const params = applyTransitionParams(row, plan, asked.event.type, this.db.channels, this.db.synchronousCommit(asked.durability));
      const applied = await this.commit(APPLY_TRANSITION, params);
      if (applied.length === 1) {
        this.db.committed([{ kind: 'transition', from: plan.change.from, event: asked.event.type, job: plan.next }]);
        return plan.next;
      }
      if (++asked.lost >= CAS_ATTEMPTS) throw new ConcurrentChange(asked.id);
    }
  }

  /**
   * A compare-and-set statement; the schedule is told of its commit as the server reports its
   * `synchronous_commit` (a statement that changed nothing reports none).
   */
  private async commit<R extends QueryResultRow>(sql: string, params: unknown[]): Promise<Array<R & { synchronous_commit: string }>> {
    const schedule = this.db.syncSchedule();
    const mark = schedule.mark();
    const { rows } = await this.query<R & { synchronous_commit: string }>(sql, params);
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
 * Folded into every statement that changes jobs, so that a committed change and its NOTIFYs are
 * one statement: no separate query whose failure could make a committed change look failed.
 * `changed` has the changed rows' id, state and cancel_requested_at; $18 is the work channel,
 * $19 this store's name, $20 the cancel channel.
 */
const NOTIFY_CHANGED = `
    work AS (SELECT pg_notify($18, $19) FROM (SELECT 1 FROM changed WHERE state = 'pending' LIMIT 1) AS w),
    cancels AS (SELECT pg_notify($20, id::text) FROM changed WHERE state = 'processing' AND cancel_requested_at IS NOT NULL)
  SELECT id, progress, (SELECT count(*) FROM work) AS work_notified, (SELECT count(*) FROM cancels) AS cancels_notified,
         (SELECT synchronous_commit FROM durability) AS synchronous_commit FROM changed`;

/**
 * The records of the attempts the statement's changes end (`AttemptRecord`), inserted for the
 * jobs whose compare-and-set applied: an attempt's record commits with the outcome that ended it,
 * in the same statement, or not at all. The record's job, number, instance and times are the
 * compare-and-set's own values (the row as it was: its attempt and owner; the change: its
 * started_at and updated_at, the event's time); only its outcome, error and stack are sent, $22 …
 * $24 (`attemptParams`), NULL for a change that ends no attempt and for one that completes the job
 * (its row keeps that attempt: the compare-and-set sets completed_by).
 */
const RECORD_ATTEMPTS = `
    recorded AS (
      INSERT INTO keel_attempts (job_id, attempt, instance, started_at, finished_at, outcome, error, stack)
      SELECT id, attempt_number, attempt_instance, coalesce(started_at, updated_at), updated_at, attempt_outcome, attempt_error, attempt_stack
        FROM changed WHERE attempt_outcome IS NOT NULL
    ),
    counted AS (
      INSERT INTO keel_stats (minute, type, metric, bucket, n)
      SELECT updated_at / 60000 * 60000, type, stat_metric, stat_bucket, count(*) FROM changed
       WHERE stat_metric IS NOT NULL GROUP BY 1, 2, 3, 4
    ),`;

/**
 * What each change adds to the stats (`statOf`): its metric (NULL: nothing) and the wait's bucket,
 * $25 and $26 of the statements that change jobs, one per job (arrays in the grouped one). The
 * `counted` CTE (with RECORD_ATTEMPTS) counts them per minute and type for the rows in `changed`
 * only: the stats of a change commit with it, in the same statement, or not at all.
 */
function statParams(plans: readonly PlannedTransition[], events: readonly JobEvent['type'][]): [Array<string | null>, number[]] {
  const stats = plans.map((plan, i) => statOf(plan.change.from, events[i], plan.next));
  return [stats.map((stat) => stat?.metric ?? null), stats.map((stat) => stat?.bucket ?? 0)];
}

/**
 * $22 … $24 of the statements that change jobs: the outcome, error and stack of the attempt each of
 * `plans` ends (NULLs: none), one array each. A completing attempt has none: the job's row keeps it
 * (`keptInJobRow`; the statement sets completed_by).
 */
function attemptParams(plans: readonly PlannedTransition[]): [Array<string | null>, Array<string | null>, Array<string | null>] {
  const records = plans.map((plan) => (plan.attempt && !keptInJobRow(plan.attempt) ? plan.attempt : undefined));
  return [records.map((r) => r?.outcome ?? null), records.map((r) => r?.error ?? null), records.map((r) => r?.stack ?? null)];
}

/**
 * The compare-and-set of every state change: it applies only if the job is still as it was
 * read (state, attempts, updated_at, owner and cancel_requested_at: a cancel request recorded in
 * the millisecond of the start leaves updated_at as it was), so a change computed from a stale row fails. Its NOTIFYs (work ready, a cancel request) are part of it.
 * Progress is not read with the row (a report moves no updated_at): $16 says whether the change
 * clears it, else it is kept as the statement finds it. $21 synchronous_commit.
 */
export const APPLY_TRANSITION = preparedAs(
  'applyTransition',
  `
    WITH ${durability('$21')},
    changed AS (
      UPDATE keel_jobs
         SET state = $2, attempts = $3, run_at = $4, started_at = $5, finished_at = $6, result = $7::json,
             last_error = $8, updated_at = $9, owner = $10, cancel_requested_at = $15,
             progress = CASE WHEN $16::boolean THEN NULL ELSE progress END,
             completed_by = CASE WHEN $2::text = 'completed' THEN $14::text END
       WHERE id = $1 AND state = $11 AND attempts = $12 AND updated_at = $13 AND owner IS NOT DISTINCT FROM $14
         AND cancel_requested_at IS NOT DISTINCT FROM $17
      RETURNING id, state, cancel_requested_at, progress, type, updated_at, started_at, $12::int AS attempt_number, $14::text AS attempt_instance,
                $22::text AS attempt_outcome, $23::text AS attempt_error, $24::text AS attempt_stack, $25::text AS stat_metric, $26::smallint AS stat_bucket
    ),${RECORD_ATTEMPTS}${NOTIFY_CHANGED}`,
);

/**
 * The parameters of `APPLY_TRANSITION` for `plan`, made on `row` for an `event`: $1 … $17 the job's
 * `casParams`, $18 … $20 the NOTIFYs', $21 synchronous_commit, $22 … $24 the outcome, error and
 * stack of the attempt its change ends (`attemptParams`), $25 and $26 its stat (`statParams`).
 */
export function applyTransitionParams(
  row: CasRow,
  plan: PlannedTransition,
  event: JobEvent['type'],
  channels: PgChannels,
  synchronousCommit: 'on' | 'off',
): unknown[] {
  const only = (columns: unknown[][]) => columns.map((column) => column[0]);
  return statementParams(casParams(row, plan), channels, synchronousCommit, only(attemptParams([plan])), only(statParams([plan], [event])));
}

/** The parameters of both statements, in order: the compare-and-set's, the NOTIFYs', synchronous_commit, the attempt's and the stat's. */
function statementParams(cas: unknown[], channels: PgChannels, synchronousCommit: 'on' | 'off', attempts: unknown[], stats: unknown[]): unknown[] {
  return [...cas, channels.work, channels.notifier, channels.cancel, synchronousCommit, ...attempts, ...stats];
}

/**
 * `APPLY_TRANSITION` for a group of distinct jobs in one statement, one array per parameter of it
 * (same order, same conditions): one commit for the group, NOTIFYs included. Returns the ids it
 * applied to, with their progress (the one column a change may not have read: progress moves
 * no updated_at); a job missing there lost its compare-and-set.
 */
const APPLY_TRANSITIONS = preparedAs(
  'applyTransitions',
  `
    WITH ${durability('$21')},
    changed AS (
      UPDATE keel_jobs j
         SET state = v.state, attempts = v.attempts, run_at = v.run_at, started_at = v.started_at, finished_at = v.finished_at,
             result = v.result, last_error = v.last_error, updated_at = v.updated_at, owner = v.owner,
             cancel_requested_at = v.cancel_requested_at, progress = CASE WHEN v.clears_progress THEN NULL ELSE j.progress END,
             completed_by = CASE WHEN v.state = 'completed' THEN v.was_owner END
        FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[], $5::bigint[], $6::bigint[], $7::json[], $8::text[],
                    $9::bigint[], $10::text[], $11::text[], $12::int[], $13::bigint[], $14::text[], $15::bigint[], $16::boolean[],
                    $17::bigint[], $22::text[], $23::text[], $24::text[], $25::text[], $26::smallint[])
             AS v(id, state, attempts, run_at, started_at, finished_at, result, last_error, updated_at, owner,
                  was_state, was_attempts, was_updated_at, was_owner, cancel_requested_at, clears_progress, was_cancel_requested_at,
                  attempt_outcome, attempt_error, attempt_stack, stat_metric, stat_bucket)
       WHERE j.id = v.id AND j.state = v.was_state AND j.attempts = v.was_attempts AND j.updated_at = v.was_updated_at
         AND j.owner IS NOT DISTINCT FROM v.was_owner AND j.cancel_requested_at IS NOT DISTINCT FROM v.was_cancel_requested_at
      RETURNING j.id, j.state, j.cancel_requested_at, j.progress, j.type, j.updated_at, j.started_at, v.was_attempts AS attempt_number,
                v.was_owner AS attempt_instance, v.attempt_outcome, v.attempt_error, v.attempt_stack, v.stat_metric, v.stat_bucket
    ),${RECORD_ATTEMPTS}${NOTIFY_CHANGED}`,
);

/** The parameters of `APPLY_TRANSITIONS`: $1 … $17 one array per parameter of the jobs' `casParams`, then as `applyTransitionParams`, arrays. */
function applyTransitionsParams(cas: unknown[][], channels: PgChannels, synchronousCommit: 'on' | 'off', attempts: unknown[], stats: unknown[]): unknown[] {
  return statementParams(
    cas[0].map((_, i) => cas.map((params) => params[i])),
    channels,
    synchronousCommit,
    attempts,
    stats,
  );
}

/**
 * The parameters $1 … $17 of `APPLY_TRANSITION` (and one row of the arrays of `APPLY_TRANSITIONS`):
 * the change, then the row as it was read, which the compare-and-set requires to be unchanged.
 */
function casParams(row: CasRow, plan: PlannedTransition): unknown[] {
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
    row.cancel_requested_at,
  ];
}
