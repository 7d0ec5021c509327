/**
 * Structured logs of the BUILT server (`npm run build` first): JSON lines on stdout at LOG_LEVEL,
 * X-Request-Id echoed and carried by the request's lines, a debug line per state change, a warn
 * line per failure, and never a payload or the Authorization header.
 */
import { cleanupProcesses, logLines, startKeel, type JobJson, type KeelProcess, type LogLine } from './support/process';
import { closeReceivers, startReceiver, type Receiver } from './support/receiver';
import { waitFor } from './support/wait';

const KEY = 'log-test-api-key-4f9a2c';
const SECRET_BODY = 'secret-payload-xyz';
const SECRET_HEADER = 'secret-header-abc';
const SECRET_KEY_VALUE = 'secret-key-in-payload-q7';

afterEach(async () => {
  await cleanupProcesses();
  await closeReceivers();
});

async function call(proc: KeelProcess, method: string, path: string, { body, headers = {} }: { body?: unknown; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${proc.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  const json = (res.headers.get('content-type') ?? '').startsWith('application/json');
  return { status: res.status, headers: res.headers, body: json && text ? (JSON.parse(text) as JobJson) : undefined };
}

async function waitForJobState(proc: KeelProcess, id: string, state: JobJson['state']): Promise<JobJson> {
  return waitFor(async () => {
    const res = await call(proc, 'GET', `/v1/jobs/${id}`);
    return res.body?.state === state ? res.body : undefined;
  }, `job ${id} to be ${state}`);
}

describe('structured logs (process)', () => {
  let receiver: Receiver;

  beforeEach(async () => {
    receiver = await startReceiver((r) => r.on('/hook', () => ({ status: 200, body: 'ok' })));
  });

  it('LOG_LEVEL=debug: JSON lines, request ids, a line per state change, warn per failure, no payloads or keys', async () => {
    const proc = await startKeel({
      env: { STORE: 'memory', LOG_LEVEL: 'debug', API_KEY: KEY, HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort },
    });

    // X-Request-Id: echoed, and carried by the request's log lines
    const traced = await call(proc, 'GET', '/v1/queue', { headers: { 'X-Request-Id': 'test-123' } });
    expect(traced.status).toBe(200);
    expect(traced.headers.get('x-request-id')).toBe('test-123');
    // without one (or with an unusable one), a fresh id is made up and echoed
    const fresh = await call(proc, 'GET', '/v1/queue');
    expect(fresh.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const insane = await call(proc, 'GET', '/v1/queue', { headers: { 'X-Request-Id': 'x'.repeat(300) } });
    expect(insane.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    // an http job whose body and headers are secrets
    const submitted = await call(proc, 'POST', '/v1/jobs', {
      headers: { 'X-Request-Id': 'submit-http-1' },
      body: {
        type: 'http',
        payload: { url: receiver.url('/hook'), headers: { 'X-Secret': SECRET_HEADER }, body: { token: SECRET_BODY, [SECRET_KEY_VALUE]: 1 } },
      },
    });
    expect(submitted.status).toBe(201);
    const httpJob = submitted.body!;
    await waitForJobState(proc, httpJob.id, 'completed');
    expect(receiver.to('/hook')[0].body).toContain(SECRET_BODY);

    // a string body too
    const stringJob = (await call(proc, 'POST', '/v1/jobs', { body: { type: 'http', payload: { url: receiver.url('/hook'), body: SECRET_BODY } } })).body!;
    await waitForJobState(proc, stringJob.id, 'completed');

    // a failure (permanent) and a retried attempt
    const failed = (await call(proc, 'POST', '/v1/jobs', { body: { type: 'fail', payload: { permanent: true, message: 'planned failure' } } })).body!;
    await waitForJobState(proc, failed.id, 'failed');
    const retried = (await call(proc, 'POST', '/v1/jobs', { body: { type: 'fail', backoffMs: 0, payload: { failTimes: 1 } } })).body!;
    await waitForJobState(proc, retried.id, 'completed');

    // a refused request (401) logs at warn
    const refused = await fetch(`${proc.baseUrl}/v1/queue`, { headers: { authorization: 'Bearer wrong-key-zz' } });
    expect(refused.status).toBe(401);

    const has = (accept: (l: LogLine) => boolean) => logLines(proc).find(accept);
    // the lines are written asynchronously to the pipe: wait for the last ones we expect
    await waitFor(
      () => has((l) => l.msg.includes(`job ${retried.id}`) && l.msg.includes('→ completed')) && has((l) => l.res?.statusCode === 401),
      'the last log lines',
    );

    const all = logLines(proc); // every line parses
    expect(all.length).toBeGreaterThan(10);
    for (const line of all) {
      expect(typeof line.level).toBe('number');
      expect(typeof line.time).toBe('number');
      expect(typeof line.msg).toBe('string');
    }

    // the request id is on the request's lines
    const tracedLines = all.filter((l) => l.req?.id === 'test-123');
    expect(tracedLines.length).toBeGreaterThanOrEqual(1);
    expect(tracedLines.some((l) => l.msg === 'request completed' && l.res?.statusCode === 200)).toBe(true);
    // a line logged by the service while handling the submission carries its request id
    expect(all.some((l) => l.req?.id === 'submit-http-1' && l.msg.includes(`job ${httpJob.id}`) && l.msg.includes('submitted → pending'))).toBe(true);

    // a debug line per state change of the http job: submitted, start, complete
    const about = (id: string) => all.filter((l) => l.msg.includes(`job ${id}`));
    const httpLines = about(httpJob.id);
    for (const transition of ['submitted → pending', 'start → processing', 'complete → completed']) {
      const line = httpLines.find((l) => l.msg.includes(transition));
      expect([transition, line?.level]).toEqual([transition, 20]);
    }
    // the workers' lines belong to no request: they carry no request id
    expect(httpLines.filter((l) => !l.msg.includes('submitted')).every((l) => l.req === undefined)).toBe(true);

    // failures at warn (pino level 40)
    const failLine = about(failed.id).find((l) => /failed/.test(l.msg) && l.msg.includes('now failed'));
    expect(failLine?.level).toBe(40);
    const retryLine = about(retried.id).find((l) => /attempt 1 failed/.test(l.msg) && l.msg.includes('now pending'));
    expect(retryLine?.level).toBe(40);
    expect(about(retried.id).find((l) => l.msg.includes('complete → completed'))?.level).toBe(20);
    // a 4xx request line at warn
    expect(all.find((l) => l.res?.statusCode === 401)?.level).toBe(40);

    // no payload, no payload header, no key: not in any line
    expect(proc.stdout).not.toContain(SECRET_BODY);
    expect(proc.stdout).not.toContain(SECRET_HEADER);
    expect(proc.stdout).not.toContain(SECRET_KEY_VALUE);
    expect(proc.stdout).not.toContain(KEY);
    expect(proc.stdout).not.toContain('wrong-key-zz');
    expect(proc.stderr).not.toContain(SECRET_BODY);
    expect(proc.stderr).not.toContain(KEY);
    // the Authorization header is there, redacted
    expect(tracedLines.some((l) => l.req?.headers?.authorization === '[redacted]')).toBe(true);
  });

  it('LOG_LEVEL=warn: no debug or info line, warnings still there', async () => {
    const proc = await startKeel({ env: { STORE: 'memory', LOG_LEVEL: 'warn', HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort } });
    const ok = (await call(proc, 'POST', '/v1/jobs', { body: { type: 'noop' } })).body!;
    await waitForJobState(proc, ok.id, 'completed');
    const hook = (await call(proc, 'POST', '/v1/jobs', { body: { type: 'http', payload: { url: receiver.url('/hook') } } })).body!;
    await waitForJobState(proc, hook.id, 'completed');
    const failed = (await call(proc, 'POST', '/v1/jobs', { body: { type: 'fail', payload: { permanent: true } } })).body!;
    await waitForJobState(proc, failed.id, 'failed');
    expect((await call(proc, 'GET', '/v1/jobs/01900000-0000-7000-8000-000000000000')).status).toBe(404);
    expect((await call(proc, 'GET', '/metrics')).status).toBe(200);

    await waitFor(
      () => logLines(proc).some((l) => l.msg.includes(`job ${failed.id}`)) && logLines(proc).some((l) => l.res?.statusCode === 404),
      'the warn lines',
    );
    const all = logLines(proc);
    const quiet = all.filter((l) => l.level < 40);
    expect(quiet).toEqual([]);
    expect(all.find((l) => l.msg.includes(`job ${failed.id}`))?.level).toBe(40);
    expect(all.some((l) => l.msg.includes(ok.id) || l.msg.includes(hook.id))).toBe(false);
  });
});
