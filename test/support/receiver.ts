import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A real local HTTP server (127.0.0.1, ephemeral port) that the `http` job type calls in the
 * specs: it records every request it receives, with the time it started and the time it ended
 * (the answer was sent, or the connection closed first, e.g. because the caller was killed), and
 * answers through a per-path responder.
 */

export interface Delivery {
  /** 1-based order of arrival over the whole receiver. */
  seq: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** When the request head arrived (Date.now()). */
  start: number;
  /**
   * When the answer was sent or the caller closed the connection, whichever came first; undefined
   * while in flight. A close counts from the moment the receiver can first tell it happened: its
   * FIN was read, or found waiting when a later delivery of the same job arrived (see `Receiver`).
   */
  end?: number;
  /** True when the answer was fully sent; false when the connection closed first. */
  answered?: boolean;
}

export interface Answer {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Answer after this many ms (simulates a slow receiver; deliveries are in flight meanwhile). */
  delayMs?: number;
  /** Never answer; the connection stays open until the caller gives up. */
  hang?: boolean;
}

/** Decides the answer; `call` is the 1-based count of requests to this path so far. */
export type Responder = (delivery: Delivery, call: number) => Answer;

export interface ReceiverOptions {
  /**
   * false: every answer says `Connection: close`, so every request comes on a connection of its
   * own and the receiver reads requests in the order they were sent (see `Receiver`). Default true.
   */
  keepAlive?: boolean;
}

/**
 * What the receiver records is what its event loop saw, which can be late: on a loaded machine a
 * request written and abandoned (connection closed) by one attempt can be read after the next
 * attempt's request, though it was sent before it. Two things keep the record faithful to the
 * order of events on the wire, without any tolerance:
 * - a delivery whose caller closed the connection ends when the receiver could first tell: the
 *   socket's FIN was read, or, when a later delivery of the same job arrives, the FIN is found
 *   already waiting in the kernel for an earlier one still in flight (a non-blocking read of its
 *   socket returns end-of-file; nothing else can be waiting, as its request was read in full).
 *   The FIN was in the kernel before the later request's bytes were read, and on loopback a
 *   close is delivered at once: it ended before the later delivery was seen.
 * - with `keepAlive: false` every request has its connection: connections are accepted in the
 *   order they were opened and read in the order they were accepted, so a request sent before
 *   another is read before it. (With keep-alive, a request on a new connection waits for the
 *   accept and a read one loop turn later, while one on a kept-alive connection is read at once.)
 * A real overlap, a request still open when the next delivery of its job arrives, is still
 * recorded as one; what no receiver can see is an overlap that ended before its event loop read
 * the later request.
 */
export class Receiver {
  readonly deliveries: Delivery[] = [];
  /** Per delivery in flight: ends it if its caller has closed the connection meanwhile. */
  private readonly pending = new Map<Delivery, () => void>();
  private readonly responders = new Map<string, Responder>();
  private readonly calls = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private server?: Server;
  private defaultResponder: Responder = () => ({ status: 200, body: 'ok' });

  constructor(private readonly options: ReceiverOptions = {}) {}

  /** Answers requests to `path` (without the query) with `responder`. */
  on(path: string, responder: Responder): this {
    this.responders.set(path, responder);
    return this;
  }

  /** Answers requests to paths without their own responder. */
  otherwise(responder: Responder): this {
    this.defaultResponder = responder;
    return this;
  }

  /** Listens on 127.0.0.1:`port` (0: an ephemeral port). */
  async start(port = 0): Promise<this> {
    const server = createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 60_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return this;
  }

  get port(): number {
    if (!this.server) throw new Error('receiver not started');
    return (this.server.address() as AddressInfo).port;
  }

  /** `host:port`, for HTTP_JOB_ALLOWED_HOSTS. */
  get hostPort(): string {
    return `127.0.0.1:${this.port}`;
  }

  url(path: string): string {
    return `http://${this.hostPort}${path}`;
  }

  /** The requests to `path`, in order of arrival. */
  to(path: string): Delivery[] {
    return this.deliveries.filter((d) => d.path === path);
  }

  /** The requests carrying `X-Job-Id: id`, in order of arrival. */
  forJob(id: string): Delivery[] {
    return this.deliveries.filter((d) => d.headers['x-job-id'] === id);
  }

  get inFlight(): number {
    return this.deliveries.filter((d) => d.end === undefined).length;
  }

  get answered(): number {
    return this.deliveries.filter((d) => d.answered === true).length;
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    // Deliveries of this job whose caller already closed the connection ended before this one.
    const jobId = req.headers['x-job-id'];
    if (jobId !== undefined) for (const [d, settleIfClosed] of this.pending) if (d.headers['x-job-id'] === jobId) settleIfClosed();
    const delivery: Delivery = {
      seq: this.deliveries.length + 1,
      method: req.method ?? '',
      path,
      headers: req.headers,
      body: '',
      start: Date.now(),
    };
    this.deliveries.push(delivery);
    const socket = req.socket;
    const ended = (answered: boolean) => {
      if (delivery.end !== undefined) return;
      delivery.end = Date.now();
      delivery.answered = answered;
      this.pending.delete(delivery);
      socket.off('end', closedByCaller);
    };
    const closedByCaller = () => ended(false);
    socket.once('end', closedByCaller);
    res.once('finish', () => ended(true));
    res.once('close', () => ended(res.writableFinished));
    if (this.options.keepAlive === false) res.setHeader('connection', 'close');
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => undefined);
    req.on('end', () => {
      delivery.body = Buffer.concat(chunks).toString('utf8');
      if (delivery.end === undefined) this.pending.set(delivery, () => peerClosed(socket) && ended(false));
      const call = (this.calls.get(path) ?? 0) + 1;
      this.calls.set(path, call);
      const answer = (this.responders.get(path) ?? this.defaultResponder)(delivery, call);
      if (answer.hang) return;
      const send = () => {
        if (res.destroyed || res.writableEnded) return;
        res.writeHead(answer.status ?? 200, answer.headers ?? {});
        res.end(answer.body ?? '');
      };
      if (answer.delayMs && answer.delayMs > 0) {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          send();
        }, answer.delayMs);
        this.timers.add(timer);
      } else {
        send();
      }
    });
  }
}

/**
 * Whether the caller has closed `socket`, asked of the kernel now: a non-blocking read of a socket
 * whose request was read in full returns end-of-file once the caller's FIN is waiting, fails with
 * EAGAIN while the connection is open, and with ECONNRESET after a reset.
 */
function peerClosed(socket: Socket): boolean {
  if (socket.destroyed || socket.readableEnded) return true;
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return false;
  try {
    return readSync(fd, Buffer.alloc(1)) === 0;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'EAGAIN';
  }
}

/** Starts a receiver; close it in afterEach (`closeReceivers`). */
const open = new Set<Receiver>();

export async function startReceiver(setup: (r: Receiver) => void = () => undefined, port = 0, options: ReceiverOptions = {}): Promise<Receiver> {
  const receiver = new Receiver(options);
  setup(receiver);
  await receiver.start(port);
  open.add(receiver);
  return receiver;
}

export async function closeReceivers(): Promise<void> {
  const all = [...open];
  open.clear();
  await Promise.all(all.map((r) => r.close()));
}

export interface DeliveryAudit {
  /** Deliveries by X-Job-Id, each job's in the order they started. */
  byJob: Map<string, Delivery[]>;
  /** Ids of jobs whose deliveries overlapped in time. */
  overlapping: string[];
  /** Every broken rule, one line each (empty when all hold). */
  problems: string[];
}

export interface AuditOptions {
  /**
   * Per job, the times (Date.now(), taken before the request was sent) of each
   * `POST /v1/jobs/:id/retry` that answered 200: a retry sets `attempts` back to 0, so a delivery
   * that starts after one may be attempt 1 again, at most once per retry sent before it. (The
   * receiver shares the test's event loop, so the last delivery of the run before a retry may be
   * recorded as starting after the retry was sent: a restart is matched to any earlier retry not
   * used yet.) Overlap is checked across retries too.
   */
  retries?: ReadonlyMap<string, readonly number[]>;
}

/**
 * The delivery rules every webhook test checks: each delivery names a submitted job and carries
 * its id as Idempotency-Key; per job, deliveries never overlap in time and attempts go up (within
 * each run between two retries, see `AuditOptions.retries`).
 */
export function auditDeliveries(deliveries: readonly Delivery[], submitted: ReadonlySet<string>, { retries }: AuditOptions = {}): DeliveryAudit {
  const byJob = new Map<string, Delivery[]>();
  const problems: string[] = [];
  const overlapping: string[] = [];
  for (const d of deliveries) {
    const id = d.headers['x-job-id'] as string;
    if (!submitted.has(id)) problems.push(`delivery ${d.seq} carries X-Job-Id ${id}, not a submitted job`);
    if (d.headers['idempotency-key'] !== id)
      problems.push(`delivery ${d.seq}: Idempotency-Key ${String(d.headers['idempotency-key'])} is not the job id ${id}`);
    byJob.set(id, [...(byJob.get(id) ?? []), d]);
  }
  for (const [id, list] of byJob) {
    list.sort((a, b) => a.start - b.start || a.seq - b.seq);
    const retriedAt = retries?.get(id) ?? [];
    let restarts = 0;
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1];
      if (prev.end === undefined || list[i].start < prev.end) {
        overlapping.push(id);
        const shown = list.map(({ seq, start, end, headers }) => ({ seq, attempt: headers['x-job-attempt'], start, end }));
        problems.push(`job ${id}: delivery ${list[i].seq} started before delivery ${prev.seq} ended: ${JSON.stringify(shown)}`);
      }
      const [a, b] = [Number(prev.headers['x-job-attempt']), Number(list[i].headers['x-job-attempt'])];
      if (b > a) continue;
      const retriesBefore = retriedAt.filter((t) => t <= list[i].start).length;
      if (b >= 1 && restarts < retriesBefore) restarts += 1;
      else problems.push(`job ${id}: delivery ${list[i].seq} is attempt ${b}, after attempt ${a}`);
    }
  }
  return { byJob, overlapping, problems };
}
