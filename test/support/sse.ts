import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { waitFor } from './wait';

/** One message of a Server-Sent Events stream, as a client reads it. */
export interface SseMessage {
  id?: string;
  event: string;
  data: unknown;
}

export interface SseClient {
  readonly status: number;
  readonly messages: SseMessage[];
  /** Comment lines received (`: text`), in order. */
  readonly comments: string[];
  /** The messages whose event name is not `reset`, with their job. */
  jobEvents(): Array<{ id: number; event: string; jobId: string; state: string }>;
  /** Waits until `accept(messages)` holds. */
  until(accept: (messages: SseMessage[]) => boolean, what: string, timeoutMs?: number): Promise<unknown>;
  close(): void;
}

/**
 * A minimal SSE reader over node:http (what EventSource does, minus the reconnect): it resolves
 * once the response's headers are in, then parses `id:`, `event:`, `data:` and comment lines.
 */
export function openSse(port: number, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const messages: SseMessage[] = [];
    const comments: string[] = [];
    let req: ClientRequest | undefined = undefined;
    req = request({ host: '127.0.0.1', port, path, headers: { Accept: 'text/event-stream', ...headers } }, (res: IncomingMessage) => {
      let buffered = '';
      let current: { id?: string; event?: string; data: string[] } = { data: [] };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline).replace(/\r$/, '');
          buffered = buffered.slice(newline + 1);
          if (line === '') {
            if (current.data.length > 0 || current.event !== undefined) {
              const text = current.data.join('\n');
              let data: unknown = text;
              try {
                data = JSON.parse(text);
              } catch {
                // not JSON: kept as text
              }
              messages.push({ id: current.id, event: current.event ?? 'message', data });
            }
            current = { data: [] };
          } else if (line.startsWith(':')) {
            comments.push(line.slice(1).trim());
          } else {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') current.id = value;
            else if (field === 'event') current.event = value;
            else if (field === 'data') current.data.push(value);
          }
        }
      });
      res.on('error', () => undefined);
      const client: SseClient = {
        status: res.statusCode ?? 0,
        messages,
        comments,
        jobEvents: () =>
          messages
            .filter((m) => m.event !== 'reset')
            .map((m) => {
              const job = (m.data as { job: { id: string; state: string } }).job;
              return { id: Number(m.id), event: m.event, jobId: job.id, state: job.state };
            }),
        until: (accept, what, timeoutMs = 20_000) => waitFor(() => accept(messages), what, { timeoutMs }),
        close: () => req?.destroy(),
      };
      if ((res.statusCode ?? 0) !== 200) {
        // an error answer: its JSON body as the one message
        let body = '';
        res.removeAllListeners('data');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          messages.push({ event: 'error', data: body ? (JSON.parse(body) as unknown) : null });
          resolve(client);
        });
        return;
      }
      resolve(client);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Opens `GET /v1/events` of an app started in-process and keeps the client in `opened`, for the
 * spec's afterEach to close.
 */
export async function openEvents(
  app: { app: { getHttpServer(): { address(): unknown } } },
  opened: SseClient[],
  query = '',
  headers: Record<string, string> = {},
): Promise<SseClient> {
  const port = (app.app.getHttpServer().address() as { port: number }).port;
  const stream = await openSse(port, `/v1/events${query}`, headers);
  opened.push(stream);
  return stream;
}
