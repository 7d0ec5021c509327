import { Inject } from '@nestjs/common';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ApiPropertyOptional, ApiProperty } from '../../common/swagger';
import { IsIn, IsObject, IsOptional, IsString, MaxLength } from 'class-validator';
import { KEEL_CONFIG, type KeelConfig } from '../../config/keel-config';
import type { JobView } from '../../core/job.view';
import { JobHandler, JobHandlerBase, PermanentJobError, type JobContext } from '../../core/job-handler';
import { AllowedHosts } from './allowed-hosts';

export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
/** The response body kept in the job's result. */
const MAX_RESPONSE_BODY = 64 * 1024;

export class HttpPayload {
  @ApiProperty({ example: 'http://127.0.0.1:8080/hooks/order', description: 'Its host must be in HTTP_JOB_ALLOWED_HOSTS.' })
  @IsString()
  @MaxLength(2048)
  url!: string;

  @ApiPropertyOptional({ enum: HTTP_METHODS, default: 'POST' })
  @IsOptional()
  @IsIn(HTTP_METHODS)
  method?: (typeof HTTP_METHODS)[number];

  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'string' } })
  @IsOptional()
  @IsObject()
  headers?: Record<string, string>;

  @ApiPropertyOptional({ description: 'Sent as is when a string, as JSON otherwise.' })
  @IsOptional()
  body?: unknown;
}

export interface HttpResult {
  status: number;
  body: string;
}

/** RFC 9110 token characters. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Statuses worth another attempt: the receiver may answer differently later. */
function retryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Calls a URL (a webhook). 2xx completes with `{status, body}`; 408, 429, 5xx, network errors and
 * timeouts are retried; any other status fails at once. Redirects are not followed. The receiver
 * gets `Idempotency-Key: <job id>` to recognise a re-delivery (delivery is at least once).
 */
@JobHandler('http', { payload: HttpPayload })
export class HttpHandler extends JobHandlerBase<HttpPayload, HttpResult> {
  private readonly allowed: AllowedHosts;

  constructor(@Inject(KEEL_CONFIG) config: KeelConfig) {
    super();
    this.allowed = AllowedHosts.parse(config.httpJobAllowedHosts.join(','));
  }

  override validatePayload(payload: HttpPayload): string[] {
    const problems: string[] = [];
    const refusal = this.allowed.refusal(payload.url);
    if (refusal) problems.push(`payload.url: ${refusal}`);
    for (const [name, value] of Object.entries(payload.headers ?? {})) {
      if (!HEADER_NAME.test(name)) problems.push(`payload.headers: "${name}" is not a valid header name`);
      else if (typeof value !== 'string') problems.push(`payload.headers.${name} must be a string`);
      else if (/[\r\n\0]/.test(value)) problems.push(`payload.headers.${name} must not contain CR, LF or NUL`);
    }
    return problems;
  }

  async handle(job: JobView<HttpPayload>, { attempt, signal }: JobContext): Promise<HttpResult> {
    const { url, method = 'POST', headers = {}, body } = job.payload;
    // Checked again here: the setting may have changed since the job was submitted.
    const refusal = this.allowed.refusal(url);
    if (refusal) throw new PermanentJobError(refusal);
    const sendsBody = body !== undefined && method !== 'GET';
    // Header names are case-insensitive: lower-case the payload's so that they replace the
    // defaults and can never be merged with the job headers below (fetch joins duplicates with ", ").
    const request: Record<string, string> = {
      ...(sendsBody && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}),
      ...Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value])),
      'x-job-id': job.id,
      'x-job-attempt': String(attempt),
      'idempotency-key': job.id,
    };
    let response: Exchange;
    try {
      response = await exchange(new URL(url), method, request, sendsBody ? (typeof body === 'string' ? body : JSON.stringify(body)) : undefined, signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw new Error(`request to ${url} failed: ${describeNetworkError(err)}`, { cause: err });
    }
    if (response.status >= 200 && response.status < 300) return { status: response.status, body: response.body };
    const message = `${method} ${url} answered ${response.status}`;
    if (response.status >= 300 && response.status < 400) {
      throw new PermanentJobError(`${message}; redirects are not followed (location: ${response.location ?? 'none'})`);
    }
    if (retryable(response.status)) throw new Error(message);
    throw new PermanentJobError(message);
  }
}

interface Exchange {
  status: number;
  location: string | undefined;
  /** The response body, cut at MAX_RESPONSE_BODY. */
  body: string;
}

/**
 * One request and its response, over when the promise settles. On abort the connection is
 * destroyed and the promise settles only once it is closed: no byte of this attempt can reach the
 * receiver after the attempt ended, and so none after the next attempt began. (`fetch` settles at
 * once on abort and may still write a request it had queued: a receiver then saw an aborted
 * attempt's request arrive after the next attempt's.) Redirects are never followed.
 */
function exchange(url: URL, method: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal): Promise<Exchange> {
  return new Promise<Exchange>((resolve, reject) => {
    if (signal.aborted) return reject(asError(signal.reason));
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const outgoing = body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) };
    const req = send(url, { method, headers: outgoing });
    let result: Exchange | undefined;
    let failure: unknown;
    const onAbort = () => {
      failure ??= signal.reason;
      req.destroy();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => {
      failure ??= err;
    });
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (size >= MAX_RESPONSE_BODY) return;
        chunks.push(chunk);
        size += chunk.byteLength;
        // Enough kept: the rest is not read, the connection goes.
        if (size >= MAX_RESPONSE_BODY) finish(true);
      });
      res.on('end', () => finish(false));
      res.on('error', (err) => {
        failure ??= err;
      });
      const finish = (cut: boolean) => {
        if (failure !== undefined || result !== undefined) return;
        result = {
          status: res.statusCode ?? 0,
          location: res.headers.location,
          body: Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BODY).toString('utf8'),
        };
        if (cut) req.destroy();
      };
    });
    // Settles on 'close' only: the request is over (answered, failed or destroyed) then.
    req.on('close', () => {
      signal.removeEventListener('abort', onAbort);
      if (failure !== undefined) reject(asError(failure));
      else if (result !== undefined) resolve(result);
      else reject(new Error('the connection closed before the response ended'));
    });
    req.end(body);
  });
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

function describeNetworkError(err: unknown): string {
  const { code, message } = err as { code?: string; message?: string };
  return code ?? message ?? String(err);
}
