// What the one-off bench scripts (drain.mjs, submit.mjs) share: a built Keel started as a child
// process and waited for, stopped with SIGTERM, and one admin statement on PostgreSQL.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Starts `checkout`'s dist/main.js with `env` (`nodeArgs` before it) and resolves once /health/ready answers on `port`. */
/**
 * The search_path of the bench's own connections to a Keel database: Keel's schema (DATABASE_SCHEMA,
 * `keel` by default), then public, where a checkout from before DATABASE_SCHEMA keeps its tables.
 */
export const KEEL_SEARCH_PATH = '-c search_path=keel,public';

export async function startKeel(checkout, env, port, nodeArgs = []) {
  const child = spawn(process.execPath, [...nodeArgs, path.join(checkout, 'dist', 'main.js')], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  for (;;) {
    if (child.exitCode !== null) throw new Error(`keel exited with ${child.exitCode}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health/ready`)).ok) return child;
    } catch {
      /* not listening yet */
    }
    await sleep(20);
  }
}

/** SIGTERM, then the exit. */
export async function stopKeel(child) {
  child.kill('SIGTERM');
  await new Promise((resolve) => child.on('exit', resolve));
}

/** Runs `sql` on the `postgres` database of `pgUrl`, with the `pg` that `require` finds (the checkout's). */
export async function pgAdmin(require, pgUrl, sql) {
  const pg = require('pg');
  const client = new pg.Client({ connectionString: `${pgUrl}/postgres` });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * A one-off Keel run's place and settings: a temp folder (its SQLite file), a random port, and a
 * PostgreSQL database name of its own (`keel_<tag>_<pid>`, created by the caller), 10 workers.
 */
export function benchKeel(store, tag) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `keel-${tag}-`));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const pgUrl = (process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432').replace(/\/$/, '');
  const dbName = `keel_${tag}_${process.pid}`;
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    WORKER_CONCURRENCY: '10',
    LOG_LEVEL: 'warn',
    MAX_BACKLOG: '5000000',
    ...(store === 'postgres' ? { STORE: 'postgres', DATABASE_URL: `${pgUrl}/${dbName}` } : { STORE: 'sqlite', SQLITE_FILE: path.join(dir, 'jobs.sqlite') }),
  };
  return { dir, port, pgUrl, dbName, env };
}

/** Single submissions to `port` for `duration` s over 10 connections (autocannon, from bench/'s own packages). */
export function submitLoad(autocannon, port, duration) {
  return new Promise((resolve, reject) =>
    autocannon(
      {
        url: `http://127.0.0.1:${port}/v1/jobs`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: process.env.KEEL_SUBMIT_BODY ?? JSON.stringify({ type: 'noop' }),
        connections: 10,
        duration,
        ...(process.env.KEEL_SUBMIT_RATE ? { overallRate: Number(process.env.KEEL_SUBMIT_RATE) } : {}),
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  );
}
