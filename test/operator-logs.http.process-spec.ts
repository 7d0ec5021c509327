/**
 * The log a person reads, from the BUILT server (`npm run build` first): no module-loading noise
 * at info, a refused request's line says why without dumping its headers, the expected 503 of
 * /health/ready during a shutdown is no error, and a port that is taken stops the start with one
 * line, like a bad setting.
 */
import { cleanupProcesses, freePort, lines, logLines, spawnKeel, startKeel, submitJob, waitForState } from './support/process';
import { waitFor } from './support/wait';

afterEach(cleanupProcesses);

const MODULE_LOADING = ['InstanceLoader', 'RoutesResolver', 'RouterExplorer'];

describe('operator logs (process)', () => {
  it("LOG_LEVEL=info: none of Nest's module-loading lines; LOG_LEVEL=debug: all of them, at debug", async () => {
    const info = await startKeel({ env: { STORE: 'memory', LOG_LEVEL: 'info' } });
    await waitFor(() => logLines(info).some((l) => l.msg.startsWith('listening on')), 'the listening line');
    const infoLines = logLines(info);
    expect(infoLines.filter((l) => MODULE_LOADING.includes(l.context ?? ''))).toEqual([]);
    expect(infoLines.filter((l) => l.level < 30)).toEqual([]);

    const debug = await startKeel({ env: { STORE: 'memory', LOG_LEVEL: 'debug' } });
    await waitFor(() => logLines(debug).some((l) => l.msg.startsWith('listening on')), 'the listening line');
    const loading = logLines(debug).filter((l) => MODULE_LOADING.includes(l.context ?? ''));
    for (const context of MODULE_LOADING) expect([context, loading.some((l) => l.context === context)]).toEqual([context, true]);
    expect(loading.every((l) => l.level === 20)).toBe(true);
    expect(loading.some((l) => /Mapped \{\/v1\/jobs, POST\}/.test(l.msg))).toBe(true);
  });

  it('a 4xx line says why, with method, path, status, time and request id, and no headers', async () => {
    const proc = await startKeel({ env: { STORE: 'memory', LOG_LEVEL: 'warn', API_KEY: 'operator-logs-key-1' } });
    const res = await fetch(`${proc.baseUrl}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer operator-logs-key-1', 'x-request-id': 'bad-1', cookie: 'c=1' },
      body: JSON.stringify({ type: 'no-such-type' }),
    });
    const sent = (await res.json()) as { message: string };
    expect(res.status).toBe(400);
    const refused = await fetch(`${proc.baseUrl}/v1/queue`, { headers: { 'x-request-id': 'bad-2' } });
    expect(refused.status).toBe(401);

    const line = await waitFor(() => logLines(proc).find((l) => l.req?.id === 'bad-1'), 'the 400 line');
    expect(line).toMatchObject({ level: 40, req: { id: 'bad-1', method: 'POST', url: '/v1/jobs' }, res: { statusCode: 400 } });
    expect(typeof line.responseTime).toBe('number');
    expect(line.msg).toContain(sent.message);
    expect(line.req).not.toHaveProperty('headers');
    expect(JSON.stringify(line)).not.toContain('operator-logs-key-1');

    const unauthorized = await waitFor(() => logLines(proc).find((l) => l.req?.id === 'bad-2'), 'the 401 line');
    expect(unauthorized).toMatchObject({ level: 40, req: { method: 'GET', url: '/v1/queue' }, res: { statusCode: 401 } });
    expect(unauthorized.msg).toMatch(/needs Authorization: Bearer/);
    expect(unauthorized.req).not.toHaveProperty('headers');
  });

  it("/health/ready's 503 and a refused submission during a shutdown are logged at info, not error", async () => {
    const proc = await startKeel({ env: { STORE: 'memory', LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_MS: '30000' } });
    const job = await submitJob(proc.http, { type: 'sleep', payload: { ms: 3_000 } });
    await waitForState(proc.http, job.id, 'processing');
    proc.child.kill('SIGTERM');
    await waitFor(
      async () => (await fetch(`${proc.baseUrl}/health/ready`, { headers: { 'x-request-id': 'probe' } })).status === 503,
      'a 503 from /health/ready',
      {
        intervalMs: 10,
      },
    );
    const refused = await fetch(`${proc.baseUrl}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'late-submit' },
      body: JSON.stringify({ type: 'noop' }),
    });
    expect(refused.status).toBe(503);
    const exit = await proc.waitExit(30_000);
    expect(exit).toEqual({ code: 0, signal: null });

    const probes = logLines(proc).filter((l) => l.req?.url === '/health/ready' && l.res?.statusCode === 503);
    expect(probes.length).toBeGreaterThanOrEqual(1);
    expect(probes.every((l) => l.level === 30)).toBe(true);
    expect(probes[0].msg).toMatch(/shutting down/);
    expect(logLines(proc).find((l) => l.req?.id === 'late-submit')).toMatchObject({ level: 30, res: { statusCode: 503 } });
    expect(logLines(proc).filter((l) => l.level >= 50)).toEqual([]);
  });

  it('a taken port stops the start with one line, no stack, exit code non-zero', async () => {
    const port = await freePort();
    const first = await startKeel({ env: { STORE: 'memory', LOG_LEVEL: 'info', PORT: String(port) } });
    const second = spawnKeel({ env: { STORE: 'memory', LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: String(port) } });
    const exit = await second.waitExit(30_000);
    expect(exit.code).not.toBe(0);
    expect(exit.code).not.toBeNull();
    expect(lines(second.stderr)).toEqual([expect.stringMatching(new RegExp(`^keel: PORT ${port} is in use on 127\\.0\\.0\\.1\\b`))]);
    expect(second.output).not.toMatch(/\n\s+at /);
    expect(logLines(second).filter((l) => l.level >= 50)).toEqual([]);
    // the first one is untouched
    expect((await fetch(`${first.baseUrl}/health/ready`)).status).toBe(200);
  });
});
