import type { JobView } from '../src/core/job.view';
import { closeAllApps, expectError, startApp, submit, waitForJob, waitForState, type Http } from './support/app';
import { freePort } from './support/process';
import { closeReceivers, startReceiver, type Receiver } from './support/receiver';
import { waitFor } from './support/wait';

/**
 * The `http` job type (docs/api.md "Job types") against a real local HTTP server: what the receiver gets,
 * which answers complete, retry or fail, timeouts, refused connections, the 64 KiB result cap,
 * and the HTTP_JOB_ALLOWED_HOSTS check at submission.
 */

afterEach(async () => {
  await closeAllApps();
  await closeReceivers();
});

interface HttpResult {
  status: number;
  body: string;
}

describe('http job against a local receiver', () => {
  let receiver: Receiver;
  let http: Http;

  beforeEach(async () => {
    receiver = await startReceiver();
    ({ http } = await startApp({ HTTP_JOB_ALLOWED_HOSTS: receiver.hostPort }));
  });

  it('a 2xx completes with {status, body}; the receiver gets the job headers and a JSON body (POST by default)', async () => {
    receiver.on('/hook', () => ({ status: 201, headers: { 'content-type': 'text/plain' }, body: 'created, thanks' }));
    const job = await submit(http, {
      type: 'http',
      payload: { url: receiver.url('/hook?x=1'), headers: { 'X-Custom': 'abc', 'x-other': 'def' }, body: { order: 42, items: ['a', 'b'] } },
    });
    const done = await waitForState(http, job.id, 'completed');
    expect(done.result).toEqual({ status: 201, body: 'created, thanks' });
    expect(done.attempts).toBe(1);

    const [d, ...more] = receiver.to('/hook');
    expect(more).toHaveLength(0);
    expect(d.method).toBe('POST');
    expect(d.headers['x-job-id']).toBe(job.id);
    expect(d.headers['x-job-attempt']).toBe('1');
    expect(d.headers['idempotency-key']).toBe(job.id);
    expect(d.headers['x-custom']).toBe('abc');
    expect(d.headers['x-other']).toBe('def');
    expect(d.headers['content-type']).toBe('application/json');
    expect(JSON.parse(d.body)).toEqual({ order: 42, items: ['a', 'b'] });
  });

  it('sends a string body as is, with the content type given in the headers', async () => {
    const job = await submit(http, {
      type: 'http',
      payload: { url: receiver.url('/form'), method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1&b=two' },
    });
    await waitForState(http, job.id, 'completed');
    const [d] = receiver.to('/form');
    expect(d.method).toBe('PUT');
    expect(d.body).toBe('a=1&b=two');
    expect(d.headers['content-type']).toBe('application/x-www-form-urlencoded');
  });

  it('a string that looks like JSON is still sent as is, not re-encoded', async () => {
    const job = await submit(http, { type: 'http', payload: { url: receiver.url('/raw'), body: '{"already":"json"}' } });
    await waitForState(http, job.id, 'completed');
    expect(receiver.to('/raw')[0].body).toBe('{"already":"json"}');
  });

  it('a content type given in another letter case replaces the JSON default instead of being merged with it', async () => {
    const job = await submit(http, {
      type: 'http',
      payload: { url: receiver.url('/typed'), headers: { 'Content-Type': 'application/vnd.keel+json' }, body: { a: 1 } },
    });
    await waitForState(http, job.id, 'completed');
    expect(receiver.to('/typed')[0].headers['content-type']).toBe('application/vnd.keel+json');
  });

  it('X-Job-Id, X-Job-Attempt and Idempotency-Key cannot be overridden by the payload headers', async () => {
    const job = await submit(http, {
      type: 'http',
      payload: { url: receiver.url('/spoof'), headers: { 'X-Job-Id': 'spoofed', 'idempotency-key': 'mine', 'X-JOB-ATTEMPT': '99' } },
    });
    await waitForState(http, job.id, 'completed');
    const [d] = receiver.to('/spoof');
    expect(d.headers['x-job-id']).toBe(job.id);
    expect(d.headers['idempotency-key']).toBe(job.id);
    expect(d.headers['x-job-attempt']).toBe('1');
  });

  it.each(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const)('uses the method %s', async (method) => {
    const job = await submit(http, { type: 'http', payload: { url: receiver.url(`/m/${method}`), method } });
    await waitForState(http, job.id, 'completed');
    const [d] = receiver.to(`/m/${method}`);
    expect(d.method).toBe(method);
    expect(d.body).toBe('');
  });

  it('a GET sends no body even when the payload has one', async () => {
    const job = await submit(http, { type: 'http', payload: { url: receiver.url('/get'), method: 'GET', body: { ignored: true } } });
    await waitForState(http, job.id, 'completed');
    const [d] = receiver.to('/get');
    expect(d.method).toBe('GET');
    expect(d.body).toBe('');
  });

  it('500 then 200: retried, completes on attempt 2 with the same Idempotency-Key', async () => {
    receiver.on('/flaky', (_d, call) => (call === 1 ? { status: 500, body: 'oops' } : { status: 200, body: 'fine' }));
    const job = await submit(http, { type: 'http', backoffMs: 0, payload: { url: receiver.url('/flaky') } });
    const done = await waitForState(http, job.id, 'completed');
    expect(done.attempts).toBe(2);
    expect(done.result).toEqual({ status: 200, body: 'fine' });
    expect(done.lastError).toMatch(/answered 500/);
    const calls = receiver.to('/flaky');
    expect(calls.map((d) => d.headers['x-job-attempt'])).toEqual(['1', '2']);
    expect(calls.map((d) => d.headers['idempotency-key'])).toEqual([job.id, job.id]);
    expect(calls.map((d) => d.headers['x-job-id'])).toEqual([job.id, job.id]);
  });

  it.each([408, 429, 500, 502, 503])('%i is retried until the attempts run out', async (status) => {
    receiver.on('/retry', () => ({ status }));
    const job = await submit(http, { type: 'http', backoffMs: 0, maxAttempts: 3, payload: { url: receiver.url('/retry') } });
    const failed = await waitForState(http, job.id, 'failed');
    expect(failed.attempts).toBe(3);
    expect(failed.lastError).toContain(`answered ${status}`);
    expect(receiver.to('/retry').map((d) => d.headers['x-job-attempt'])).toEqual(['1', '2', '3']);
  });

  it.each([400, 401, 403, 404, 410, 422])('%i fails permanently after 1 attempt', async (status) => {
    receiver.on('/perm', () => ({ status, body: 'no' }));
    const job = await submit(http, { type: 'http', backoffMs: 0, maxAttempts: 5, payload: { url: receiver.url('/perm') } });
    const failed = await waitForState(http, job.id, 'failed');
    expect(failed.attempts).toBe(1);
    expect(failed.lastError).toContain(`answered ${status}`);
    expect(receiver.to('/perm')).toHaveLength(1);
  });

  it.each([301, 302, 307, 308])('a %i is not followed: the Location target never gets a call, and the job fails', async (status) => {
    receiver.on('/moved', () => ({ status, headers: { location: receiver.url('/target') } }));
    const job = await submit(http, { type: 'http', backoffMs: 0, maxAttempts: 3, payload: { url: receiver.url('/moved') } });
    const failed = await waitForState(http, job.id, 'failed');
    expect(failed.attempts).toBe(1);
    expect(failed.lastError).toContain(`answered ${status}`);
    expect(failed.lastError).toMatch(/redirects are not followed/);
    expect(receiver.to('/moved')).toHaveLength(1);
    expect(receiver.to('/target')).toHaveLength(0);
  });

  it('a receiver that never answers: the attempt times out after timeoutMs and is retried', async () => {
    receiver.on('/hang', () => ({ hang: true }));
    const job = await submit(http, { type: 'http', timeoutMs: 200, backoffMs: 0, maxAttempts: 2, payload: { url: receiver.url('/hang') } });
    const failed = await waitForState(http, job.id, 'failed');
    expect(failed.attempts).toBe(2);
    expect(failed.lastError).toBe('timed out after 200 ms');
    expect(receiver.to('/hang').map((d) => d.headers['x-job-attempt'])).toEqual(['1', '2']);
    // Keel gave up on the requests: their connections were closed
    await waitFor(() => receiver.to('/hang').every((d) => d.end !== undefined), 'the hanging requests to be closed by Keel');
  });

  it('a slow receiver that answers after a timed-out attempt: the next attempt completes', async () => {
    receiver.on('/slow-then-fast', (_d, call) => (call === 1 ? { hang: true } : { status: 200, body: 'second' }));
    const job = await submit(http, { type: 'http', timeoutMs: 200, backoffMs: 0, payload: { url: receiver.url('/slow-then-fast') } });
    const done = await waitForState(http, job.id, 'completed');
    expect(done.attempts).toBe(2);
    expect(done.lastError).toBe('timed out after 200 ms');
    expect(done.result).toEqual({ status: 200, body: 'second' });
  });

  it('cuts a response body over 64 KiB at 65536 bytes', async () => {
    const big = 'a'.repeat(200_000);
    receiver.on('/big', () => ({ status: 200, body: big }));
    const job = await submit(http, { type: 'http', payload: { url: receiver.url('/big') } });
    const done = await waitForState(http, job.id, 'completed');
    const result = done.result as HttpResult;
    expect(result.status).toBe(200);
    expect(Buffer.byteLength(result.body)).toBe(65536);
    expect(result.body).toBe(big.slice(0, 65536));
  });

  it('keeps a body of exactly 64 KiB whole, and a small one as is', async () => {
    const exact = 'b'.repeat(65536);
    receiver.on('/exact', () => ({ status: 200, body: exact }));
    receiver.on('/empty', () => ({ status: 204 }));
    const a = await submit(http, { type: 'http', payload: { url: receiver.url('/exact') } });
    const b = await submit(http, { type: 'http', payload: { url: receiver.url('/empty') } });
    expect(((await waitForState(http, a.id, 'completed')).result as HttpResult).body).toBe(exact);
    expect((await waitForState(http, b.id, 'completed')).result).toEqual({ status: 204, body: '' });
  });

  it('cancelling a job whose request is in flight aborts the request', async () => {
    receiver.on('/cancel-me', () => ({ hang: true }));
    const job = await submit(http, { type: 'http', payload: { url: receiver.url('/cancel-me') } });
    await waitFor(() => receiver.to('/cancel-me').length === 1, 'the request to reach the receiver');
    const res = await http.post(`/v1/jobs/${job.id}/cancel`);
    expect(res.status).toBe(200);
    await waitForState(http, job.id, 'cancelled');
    await waitFor(() => receiver.to('/cancel-me')[0].end !== undefined, 'the cancelled request to be closed');
    expect(receiver.to('/cancel-me')[0].answered).toBe(false);
  });
});

describe('http job: connection refused', () => {
  it('a closed port that is in the allowed list is retried, then fails', async () => {
    const closed = await freePort();
    const { http } = await startApp({ HTTP_JOB_ALLOWED_HOSTS: `127.0.0.1:${closed}` });
    const job = await submit(http, { type: 'http', backoffMs: 0, maxAttempts: 2, payload: { url: `http://127.0.0.1:${closed}/nobody` } });
    const failed = await waitForState(http, job.id, 'failed');
    expect(failed.attempts).toBe(2);
    expect(failed.lastError).toMatch(/ECONNREFUSED/);
  });

  it('a refused first attempt completes once the receiver is up', async () => {
    const receiver = await startReceiver();
    const port = receiver.port;
    await receiver.close();
    const { http } = await startApp({ HTTP_JOB_ALLOWED_HOSTS: `127.0.0.1:${port}` });
    // maxAttempts is large and the backoff short so that the receiver can come back in time
    const job = await submit(http, { type: 'http', backoffMs: 50, maxAttempts: 100, payload: { url: `http://127.0.0.1:${port}/back` } });
    await waitForJob(http, job.id, (j) => j.attempts >= 1 && j.lastError !== null, 'a refused attempt');
    const back = await startReceiver(() => undefined, port);
    const done = await waitForState(http, job.id, 'completed');
    expect(done.attempts).toBeGreaterThanOrEqual(2);
    expect(back.to('/back')).toHaveLength(1);
    expect(back.to('/back')[0].headers['x-job-attempt']).toBe(String(done.attempts));
  });
});

describe('http job: HTTP_JOB_ALLOWED_HOSTS at submission', () => {
  let receiver: Receiver;
  let http: Http;

  beforeEach(async () => {
    receiver = await startReceiver();
    ({ http } = await startApp({ HTTP_JOB_ALLOWED_HOSTS: `${receiver.hostPort},api.example.com:443` }));
  });

  async function refused(url: unknown, message: RegExp): Promise<void> {
    const res = await http.post('/v1/jobs').send({ type: 'http', payload: { url } });
    expectError(res, 400, message);
  }

  it('refuses a host that is not allowed with 400 naming HTTP_JOB_ALLOWED_HOSTS', async () => {
    await refused('http://10.1.2.3/hook', /HTTP_JOB_ALLOWED_HOSTS/);
    await refused(`http://localhost:${receiver.port}/hook`, /host localhost:\d+ is not in HTTP_JOB_ALLOWED_HOSTS/);
    await refused('https://evil.example.com/', /HTTP_JOB_ALLOWED_HOSTS/);
  });

  it('refuses an allowed host on another port with 400 naming HTTP_JOB_ALLOWED_HOSTS', async () => {
    const other = receiver.port === 65535 ? receiver.port - 1 : receiver.port + 1;
    await refused(`http://127.0.0.1:${other}/hook`, new RegExp(`127\\.0\\.0\\.1:${other} is not in HTTP_JOB_ALLOWED_HOSTS`));
    // api.example.com is allowed on 443 only: https without a port is 443, http without a port is 80
    const ok = await http.post('/v1/jobs').send({ type: 'http', delayMs: 3_600_000, payload: { url: 'https://api.example.com/x' } });
    expect(ok.status).toBe(201);
    const okCase = await http.post('/v1/jobs').send({ type: 'http', delayMs: 3_600_000, payload: { url: 'https://API.Example.COM:443/x' } });
    expect(okCase.status).toBe(201);
    await refused('http://api.example.com/x', /api\.example\.com:80 is not in HTTP_JOB_ALLOWED_HOSTS/);
  });

  it('refuses an invalid URL with 400', async () => {
    await refused('not a url', /is not a URL/);
    await refused('', /is not a URL|url/);
    await refused('//127.0.0.1/hook', /is not a URL/);
  });

  it('refuses a non-http scheme with 400', async () => {
    await refused(`ftp://${receiver.hostPort}/file`, /only http and https/);
    await refused('file:///etc/passwd', /only http and https/);
    await refused(`ws://${receiver.hostPort}/`, /only http and https/);
    await refused('javascript:alert(1)', /only http and https/);
  });

  it('refuses an invalid payload: missing url, bad method, non-string header value', async () => {
    expectError(await http.post('/v1/jobs').send({ type: 'http', payload: {} }), 400, /url/);
    expectError(await http.post('/v1/jobs').send({ type: 'http', payload: { url: receiver.url('/'), method: 'HEAD' } }), 400, /method/);
    expectError(await http.post('/v1/jobs').send({ type: 'http', payload: { url: receiver.url('/'), headers: { a: 1 } } }), 400, /headers/);
  });

  it('refuses header names and values that no request could carry, at submission', async () => {
    const url = receiver.url('/');
    expectError(await http.post('/v1/jobs').send({ type: 'http', payload: { url, headers: { 'bad header': 'x' } } }), 400, /not a valid header name/);
    expectError(await http.post('/v1/jobs').send({ type: 'http', payload: { url, headers: { 'x-a': 'one\r\nx-b: two' } } }), 400, /CR, LF or NUL/);
    expect(receiver.deliveries).toHaveLength(0);
  });

  it('accepts the allowed host:port', async () => {
    const res = await http.post('/v1/jobs').send({ type: 'http', payload: { url: receiver.url('/ok') } });
    expect(res.status).toBe(201);
    await waitForState(http, (res.body as JobView).id, 'completed');
  });
});

describe('http job: other HTTP_JOB_ALLOWED_HOSTS settings', () => {
  it('unset (empty) refuses every URL', async () => {
    const receiver = await startReceiver();
    const { http } = await startApp({ HTTP_JOB_ALLOWED_HOSTS: undefined });
    for (const url of [receiver.url('/x'), 'https://example.com/', 'http://localhost/']) {
      const res = await http.post('/v1/jobs').send({ type: 'http', payload: { url } });
      expectError(res, 400, /HTTP_JOB_ALLOWED_HOSTS is empty/);
    }
    expect(receiver.deliveries).toHaveLength(0);
  });

  it('a host entry without a port allows any port of that host', async () => {
    const a = await startReceiver();
    const b = await startReceiver();
    const { http } = await startApp({ HTTP_JOB_ALLOWED_HOSTS: 'example.org, 127.0.0.1' });
    const ja = await submit(http, { type: 'http', payload: { url: a.url('/a') } });
    const jb = await submit(http, { type: 'http', payload: { url: b.url('/b') } });
    await waitForState(http, ja.id, 'completed');
    await waitForState(http, jb.id, 'completed');
    expect(a.to('/a')).toHaveLength(1);
    expect(b.to('/b')).toHaveLength(1);
    // still only that host
    expectError(
      await http.post('/v1/jobs').send({ type: 'http', payload: { url: a.url('/a').replace('127.0.0.1', 'localhost') } }),
      400,
      /HTTP_JOB_ALLOWED_HOSTS/,
    );
  });
});
