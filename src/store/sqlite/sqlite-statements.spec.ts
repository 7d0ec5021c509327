import Database from 'better-sqlite3';
import { SQLITE_MIGRATIONS } from './sqlite-migrations';
import { applyTransitionSql, SQL } from './sqlite-statements';

/**
 * The feeder's queries run on every wake-up, over every pending job: each must be an index search
 * that stops early, never a scan or a sort. Plans are checked on an empty schema, where the planner
 * has no statistics: the case of a new file.
 */
describe('SQLite statements: query plans of the hot path', () => {
  let db: Database.Database;

  beforeAll(() => {
    db = new Database(':memory:');
    for (const migration of SQLITE_MIGRATIONS) db.exec(migration);
  });

  afterAll(() => db.close());

  const plan = (sql: string, params: unknown): string =>
    (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params as never) as { detail: string }[]).map((r) => r.detail).join(' | ');

  it('claims one priority level by an index search on (priority, run_at), in index order', () => {
    for (const types of [JSON.stringify(['noop', 'http']), null]) {
      const detail = plan(SQL.claimReadyAt, { owner: 'o', now: 0, priority: 0, types, limit: 10 });
      expect(detail).toContain('SEARCH jobs USING INDEX jobs_dispatch (priority=? AND run_at<?)');
      expect(detail).not.toMatch(/TEMP B-TREE|SCAN jobs /);
    }
  });

  it('finds the next priority level by an index search', () => {
    const detail = plan(SQL.levelBelow, [0]);
    expect(detail).toContain('SEARCH jobs USING INDEX jobs_dispatch (priority<?)');
    expect(detail).not.toMatch(/TEMP B-TREE|SCAN jobs/);
  });

  it('finds the next scheduled job by an index search on run_at', () => {
    const detail = plan(SQL.nextScheduledAt, [0]);
    expect(detail).toContain('SEARCH jobs USING INDEX jobs_scheduled (run_at>?)');
    expect(detail).not.toMatch(/TEMP B-TREE|SCAN jobs/);
  });

  it('finds the jobs to prune by an index search on (state, finished_at), never a scan', () => {
    const detail = plan(SQL.pruneFinished, [0, 0, 1000]);
    expect(detail).toContain('USING INDEX jobs_finished (state=? AND finished_at<?)');
    expect(detail).not.toMatch(/SCAN jobs(?! USING)/);
  });

  it('reads a job’s attempts by an index search on (job_id, seq) and its row by its primary key, never a scan', () => {
    const detail = plan(SQL.attemptsOf, { id: 'x', limit: 10 });
    expect(detail).toContain('SEARCH attempts USING INDEX attempts_by_job (job_id=?)');
    expect(detail).toContain('SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 (id=?)');
    expect(detail).not.toMatch(/SCAN (attempts|jobs)/);
  });

  it('reads and changes one job by its primary key', () => {
    expect(plan(SQL.getJob, ['x'])).toMatch(/SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 \(id=\?\)/);
    expect(plan(applyTransitionSql(['state', 'attempts', 'started_at', 'updated_at']), ['processing', 1, 0, 0, 'x', 'pending'])).toMatch(
      /SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 \(id=\?\)/,
    );
  });
});
