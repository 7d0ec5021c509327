/**
 * Shutdown bounds of the BUILT server (docs/api.md "The job"a): after SIGTERM, open HTTP connections (idle
 * keep-alive, slow or half-sent requests) are closed at most SHUTDOWN_TIMEOUT_MS after the signal
 * and the process exits 0 within SHUTDOWN_TIMEOUT_MS + 2 s; a signal during recovery means no
 * attempt starts, no worker starts and the port never opens. Needs `npm run build` first.
 */
import Database from 'better-sqlite3';
import { connect, type Socket } from 'node:net';
import { v7 as uuidv7 } from 'uuid';
import { SqliteJobStore } from '../src/store/sqlite/sqlite-job.store';
import { cleanupProcesses, freePort, spawnKeel, startKeel, submitJob, tempSqliteFile, waitForState, type Exit, type KeelProcess } from './support/process';
import { closeReceivers, startReceiver } from './support/receiver';
import { waitFor } from './support/wait';

const SHUTDOWN_TIMEOUT_MS = 2_000;
/** The contract's bound, measured from the signal. */
const BOUND_MS = SHUTDOWN_TIMEOUT_MS + 2_000;
/** How long the test waits for the exit: longer than the bound, so that the bound's assertion fails on its own. */
const EXIT_WAIT_MS = BOUND_MS + 10_000;

/** The warn line of main.ts's last-resort exit: a clean shutdown never needs it. */
const LAST_RESORT = /shutdown not finished/;

const sockets = new Set<Socket>();

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await cleanupProcesses();
  await closeReceivers();
});

/** A raw TCP connection to the server, connected; destroyed after the test. */
async function openSocket(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  sockets.add(socket);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** When the socket was closed (by either side), as a promise of Date.now() at that moment. */
function closedAt(socket: Socket): Promise<number> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(Date.now());
    socket.once('close', () => resolve(Date.now()));
  });
}

/** Sends one complete keep-alive request on `socket` and resolves with its response head once the whole response arrived. */
async function roundTrip(socket: Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = '';
    const onData = (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const head = received.slice(0, headEnd);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
      if (!Number.isFinite(length)) return reject(new Error(`no Content-Length in ${head}`));
      if (received.length - headEnd - 4 < length) return;
      socket.off('data', onData);
      resolve(head);
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`connection closed before the whole response to ${path}; got ${JSON.stringify(received)}`)));
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`);
  });
}

/** Sends SIGTERM and measures the time to the exit; fails if the process is still running EXIT_WAIT_MS later. */
async function terminate(proc: KeelProcess): Promise<{ exit: Exit; elapsed: number; signalledAt: number }> {
  const signalledAt = Date.now();
  proc.child.kill('SIGTERM');
  const exit = await proc.waitExit(EXIT_WAIT_MS);
  return { exit, elapsed: Date.now() - signalledAt, signalledAt };
}

const env = { SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) };

describe('shutdown bounds with open connections (process)', () => {
  it('a client sending half a POST body a few bytes at a time does not hold the exit', async () => {
    const proc = await startKeel({ sqliteFile: tempSqliteFile(), env });
    const socket = await openSocket(proc.port);
    // One full exchange first: the connection is accepted and served before the slow request begins.
    expect(await roundTrip(socket, '/health/live')).toMatch(/^HTTP\/1\.1 200/);
    const body = JSON.stringify({ type: 'sleep', payload: { ms: 10 } }).padEnd(400, ' ');
    socket.write(`POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    let sent = 0;
    const trickle = () => {
      if (socket.destroyed || sent >= body.length / 2) return;
      socket.write(body.slice(sent, sent + 4));
      sent += 4;
    };
    trickle();
    // The client's own pace (4 bytes every 250 ms), not a wait of the test.
    const pace = setInterval(trickle, 250);
    const closed = closedAt(socket);
    try {
      const { exit, elapsed } = await terminate(proc);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(elapsed).toBeLessThan(BOUND_MS);
      expect(proc.stdout).not.toMatch(LAST_RESORT);
      await closed;
    } finally {
      clearInterval(pace);
    }
  });

  it('300 connections with partial headers do not hold the exit', async () => {
    const proc = await startKeel({ sqliteFile: tempSqliteFile(), env });
    const open = await Promise.all(Array.from({ length: 300 }, () => openSocket(proc.port)));
    for (const [i, socket] of open.entries()) socket.write(`GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-${i}: `);
    // Every connection is open on the server's side: one more full request is served after all of them.
    const probe = await openSocket(proc.port);
    expect(await roundTrip(probe, '/health/live')).toMatch(/^HTTP\/1\.1 200/);
    const closed = Promise.all(open.map(closedAt));

    const { exit, elapsed } = await terminate(proc);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(elapsed).toBeLessThan(BOUND_MS);
    expect(proc.stdout).not.toMatch(LAST_RESORT);
    await closed;
  });

  it('an idle keep-alive connection is closed right after the signal; requests after it are answered with Connection: close', async () => {
    // A long attempt keeps the drain going for the whole SHUTDOWN_TIMEOUT_MS: the process is still
    // running, and the HTTP server still open, when the idle connection must already be closed.
    // A longer timeout here: the drain must outlast the test's own steps on a busy machine.
    const timeoutMs = 4_000;
    const proc = await startKeel({ sqliteFile: tempSqliteFile(), env: { SHUTDOWN_TIMEOUT_MS: String(timeoutMs), WORKER_CONCURRENCY: '1' } });
    const long = await submitJob(proc.http, { type: 'sleep', payload: { ms: 60_000 } });
    await waitForState(proc.http, long.id, 'processing');
    const idle = await openSocket(proc.port);
    expect(await roundTrip(idle, '/health/live')).toMatch(/^HTTP\/1\.1 200/);

    let exitedAt: number | undefined;
    void proc.exited.then(() => (exitedAt = Date.now()));
    let giveBackLoggedWhenClosed: boolean | undefined;
    const idleClosed = closedAt(idle).then((at) => {
      giveBackLoggedWhenClosed = /giving them back/.test(proc.stdout);
      return at;
    });

    const signalledAt = Date.now();
    proc.child.kill('SIGTERM');
    const closedAtMs = await Promise.race([idleClosed, proc.exited.then(() => undefined)]);
    expect(closedAtMs).toBeDefined(); // closed before the process exited
    expect(exitedAt).toBeUndefined();
    expect(giveBackLoggedWhenClosed).toBe(false); // before the drain's deadline passed
    expect(closedAtMs! - signalledAt).toBeLessThan(timeoutMs);

    // The server still answers during the drain, and says it will close the connection.
    const late = await openSocket(proc.port);
    const lateClosedWhileRunning = closedAt(late).then(() => exitedAt === undefined);
    const head = await roundTrip(late, '/health/live');
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    expect(head).toMatch(/\r\nconnection: close\r?$/im);
    expect(await lateClosedWhileRunning).toBe(true);

    const exit = await proc.waitExit(timeoutMs + 12_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(exitedAt! - signalledAt).toBeLessThan(timeoutMs + 2_000);
    expect(proc.stdout).not.toMatch(LAST_RESORT);
  });

  it('SIGTERM during recovery: no attempt starts, no worker starts, the port never opens, exit 0, no job lost', async () => {
    const receiver = await startReceiver();
    const file = tempSqliteFile();
    const PENDING = 50_000;
    const PROCESSING = 1_000;
    const seed = new SqliteJobStore(file);
    await seed.open();
    const now = Date.now();
    for (let done = 0; done < PENDING; done += 5_000) {
      await seed.insert(
        Array.from({ length: 5_000 }, () => ({
          id: uuidv7(),
          type: 'http',
          payload: { url: receiver.url('/hook') },
          priority: 0,
          maxAttempts: 3,
          backoffMs: 1_000,
          timeoutMs: 30_000,
          runAt: now,
          createdAt: now,
          idempotencyKey: null,
        })),
        PENDING,
      );
    }
    await seed.close();
    const db = new Database(file);
    const marked = db
      .prepare(
        `UPDATE jobs SET state = 'processing', attempts = 1, owner = 'dead-owner', started_at = ?, updated_at = ?
         WHERE id IN (SELECT id FROM jobs ORDER BY id LIMIT ?)`,
      )
      .run(now, now, PROCESSING);
    db.close();
    expect(marked.changes).toBe(PROCESSING);

    const port = await freePort();
    const proc = spawnKeel({
      env: {
        HOST: '127.0.0.1',
        PORT: String(port),
        STORE: 'sqlite',
        SQLITE_FILE: file,
        LOG_LEVEL: 'info',
        HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort,
        MAX_BACKLOG: String(PENDING * 2),
        ...env,
      },
    });
    // The signal goes out the moment the recovery line is on stdout.
    let signalledAt: number | undefined;
    const onOutput = () => {
      if (signalledAt === undefined && /recovery started/.test(proc.stdout)) {
        signalledAt = Date.now();
        proc.child.kill('SIGTERM');
      }
    };
    proc.child.stdout!.on('data', onOutput);
    await waitFor(() => signalledAt !== undefined || proc.hasExited, 'the "recovery started" line', { timeoutMs: 60_000 });
    if (signalledAt === undefined) throw new Error(`keel exited before recovery started: ${JSON.stringify(proc.exit)}\n${proc.output}`);

    const exit = await proc.waitExit(EXIT_WAIT_MS);
    const elapsed = Date.now() - signalledAt;
    const log = proc.stdout;
    const signalLine = log.indexOf('SIGTERM: shutting down');
    const doneLine = log.indexOf('recovery done');
    if (signalLine < 0 || (doneLine >= 0 && doneLine < signalLine)) {
      throw new Error(`recovery finished before the signal was handled: the test did not test a signal during recovery\n${proc.output}`);
    }
    expect(exit).toEqual({ code: 0, signal: null });
    expect(elapsed).toBeLessThan(BOUND_MS);
    expect(receiver.deliveries).toHaveLength(0);
    expect(log).not.toMatch(/workers started/);
    expect(log).not.toMatch(/workers stopped/);
    expect(log).not.toMatch(/listening/);
    if (doneLine >= 0) expect(log).toMatch(/recovery done in \d+ ms \(stopped early by the shutdown/);
    expect(log).not.toMatch(LAST_RESORT);

    // Nothing lost: every job is still there, none ran.
    const after = new SqliteJobStore(file);
    await after.open();
    try {
      const counts = await after.counts();
      expect(counts.pending + counts.processing + counts.completed + counts.failed + counts.cancelled).toBe(PENDING);
      expect(counts.completed + counts.failed + counts.cancelled).toBe(0);
    } finally {
      await after.close();
    }
  });
});
