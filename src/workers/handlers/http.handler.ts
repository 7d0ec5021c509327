import { Inject } from '@nestjs/common';
import { ApiPropertyOptional, ApiProperty } from '@nestjs/swagger';
import { IsIn, IsObject, IsOptional, IsString, MaxLength } from 'class-validator';
import { KEEL_CONFIG, type KeelConfig } from '../../config/keel-config';
import type { JobView } from '../../core/job.view';
import { JobHandler, JobHandlerBase, PermanentJobError, type JobContext } from '../../core/job-handler';
import { AllowedHosts } from './allowed-hosts';

export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
/** The response body kept in the job's result. */
export const MAX_RESPONSE_BODY = 64 * 1024;

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
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: request,
        body: sendsBody ? (typeof body === 'string' ? body : JSON.stringify(body)) : undefined,
        redirect: 'manual',
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw new Error(`request to ${url} failed: ${describeNetworkError(err)}`, { cause: err });
    }
    const text = await readCapped(response, MAX_RESPONSE_BODY);
    if (response.status >= 200 && response.status < 300) return { status: response.status, body: text };
    const message = `${method} ${url} answered ${response.status}`;
    if (response.status >= 300 && response.status < 400) {
      throw new PermanentJobError(`${message}; redirects are not followed (location: ${response.headers.get('location') ?? 'none'})`);
    }
    if (retryable(response.status)) throw new Error(message);
    throw new PermanentJobError(message);
  }
}

async function readCapped(response: Response, max: number): Promise<string> {
  if (!response.body) return '';
  const reader: ReadableStreamDefaultReader<Uint8Array> = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}

function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}
