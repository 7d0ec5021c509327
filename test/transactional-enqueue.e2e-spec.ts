/**
 * Enqueue in the application's transaction (docs/embedding.md "Enqueue in your transaction"): a
 * job added with `tx` exists if and only if that transaction commits, runs once after the commit,
 * and is counted then; its idempotency key holds inside the transaction. With a node-postgres
 * client, a TypeORM QueryRunner and a TypeORM transaction's EntityManager. SQLite refuses `tx`
 * with a clear error. Runs the PostgreSQL part only with TEST_DATABASE_URL.
 */
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { InvalidJob } from '../src/core/job.errors';
import { JobsClient } from '../src/jobs/jobs.client';
import { closeAllApps, queueStats, startApp, waitForState, type TestApp } from './support/app';
import { createTestDatabase, describePg, dropTestDatabases, pgQuery } from './support/postgres';
import { waitFor } from './support/wait';

describePg('enqueue in the application’s transaction (PostgreSQL)', () => {
  let app: TestApp;
  let jobs: JobsClient;
  let url: string;

  beforeAll(async () => {
    url = (await createTestDatabase()).url;
    app = await startApp({ STORE: 'postgres', DATABASE_URL: url });
    jobs = app.app.get(JobsClient);
    // The application's own table, in its own schema (public): Keel's are in keel.
    await pgQuery(url, 'CREATE TABLE public.orders (id int PRIMARY KEY)');
  });

  afterAll(async () => {
    await closeAllApps();
    await dropTestDatabases();
  });

  async function submitted(): Promise<number> {
    const res = await app.http.get('/metrics').expect(200);
    const line = res.text.split('\n').find((l) => l.startsWith('jobs_submitted_total{type="noop"}'));
    return line ? Number(line.split(' ').pop()) : 0;
  }

  it('with a node-postgres client: a rollback leaves no job; a commit makes one that runs once, counted at the commit', async () => {
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      const before = await submitted();
      await client.query('BEGIN');
      await client.query('INSERT INTO orders (id) VALUES (1)');
      const rolledBack = await jobs.add('noop', { order: 1 }, { tx: client });
      await client.query('ROLLBACK');
      await app.http.get(`/v1/jobs/${rolledBack.id}`).expect(404);

      await client.query('BEGIN');
      await client.query('INSERT INTO orders (id) VALUES (2)');
      const committed = await jobs.add('noop', { order: 2 }, { tx: client, idempotencyKey: 'order-2' });
      // Inside the transaction the key holds: the same key and job answer the same job.
      expect((await jobs.add('noop', { order: 2 }, { tx: client, idempotencyKey: 'order-2' })).id).toBe(committed.id);
      // Not visible, not run, not counted before the commit.
      await app.http.get(`/v1/jobs/${committed.id}`).expect(404);
      expect(await submitted()).toBe(before);
      await client.query('COMMIT');

      const done = await waitForState(app.http, committed.id, 'completed');
      expect(done.attempts).toBe(1);
      expect(await pgQuery(url, 'SELECT id FROM public.orders ORDER BY id')).toEqual([{ id: 2 }]);
      // Counted once, at the commit; the rolled-back one never.
      await waitForCount(before + 1);
      // In the stats too: the job the rolled-back transaction inserted was never created.
      expect((await jobs.stats()).types).toEqual([
        expect.objectContaining({ type: 'noop', created: 1, completed: 1, wait: expect.objectContaining({ count: 1 }) }),
      ]);
      // The key outside the transaction now names the committed job.
      expect((await jobs.add('noop', { order: 2 }, { idempotencyKey: 'order-2' })).id).toBe(committed.id);
    } finally {
      await client.end();
    }
  });

  it('a refusal inside the transaction leaves it usable: a reused key is refused, the rest commits', async () => {
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      await client.query('BEGIN');
      const first = await jobs.add('noop', { n: 1 }, { tx: client, idempotencyKey: 'k-reused' });
      await expect(jobs.add('noop', { n: 2 }, { tx: client, idempotencyKey: 'k-reused' })).rejects.toThrow(/k-reused/);
      await client.query('INSERT INTO orders (id) VALUES (3)');
      await client.query('COMMIT');
      await waitForState(app.http, first.id, 'completed');
    } finally {
      await client.end();
    }
  });

  it('with TypeORM: a QueryRunner’s transaction and a transaction’s EntityManager', async () => {
    const dataSource = new DataSource({ type: 'postgres', url });
    await dataSource.initialize();
    try {
      const runner = dataSource.createQueryRunner();
      await runner.connect();
      await runner.startTransaction();
      const rolledBack = await jobs.add('noop', {}, { tx: runner });
      await runner.rollbackTransaction();
      await runner.startTransaction();
      const viaRunner = await jobs.add('noop', {}, { tx: runner });
      await runner.commitTransaction();
      await runner.release();

      const [viaManager] = await dataSource.transaction(async (manager) => {
        await manager.query('INSERT INTO orders (id) VALUES (4)');
        return jobs.addBulk([{ type: 'noop', payload: { bulk: true } }], { tx: manager });
      });
      await app.http.get(`/v1/jobs/${rolledBack.id}`).expect(404);
      for (const job of [viaRunner, viaManager]) expect((await waitForState(app.http, job.id, 'completed')).attempts).toBe(1);

      await expect(jobs.add('noop', {}, { tx: dataSource.manager })).rejects.toThrow(InvalidJob);
    } finally {
      await dataSource.destroy();
    }
  });

  it('a client outside any transaction is refused, and nothing is stored', async () => {
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      const before = (await queueStats(app.http)).counts;
      await expect(jobs.add('noop', {}, { tx: client })).rejects.toThrow(/not inside a transaction/);
      expect((await queueStats(app.http)).counts).toEqual(before);
    } finally {
      await client.end();
    }
  });

  async function waitForCount(n: number): Promise<void> {
    await waitFor(async () => (await submitted()) === n, `jobs_submitted_total to be ${n}`);
  }
});

describe('enqueue in a transaction on SQLite', () => {
  afterAll(() => closeAllApps());

  it('is refused with a clear error, and nothing is stored', async () => {
    const { app, http } = await startApp({ STORE: 'memory' });
    await expect(app.get(JobsClient).add('noop', {}, { tx: { query: () => Promise.resolve({ rows: [] }) } })).rejects.toThrow(
      /needs the PostgreSQL store; this one is memory/,
    );
    expect((await queueStats(http)).counts.pending).toBe(0);
  });
});
