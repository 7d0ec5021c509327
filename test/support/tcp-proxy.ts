import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A small TCP proxy (127.0.0.1, ephemeral port) between Keel and PostgreSQL, to inject
 * connection faults:
 *
 * - `cut()`: every connection is destroyed and new ones are refused (the port stops listening:
 *   ECONNREFUSED), as when the database server goes down;
 * - `blackhole()`: connections stay open and new ones are accepted, but nothing goes through in
 *   either direction, as when the network drops packets; the bytes are held, not lost;
 * - `restore()`: back to forwarding. After a blackhole the held bytes are delivered, as TCP
 *   delivers them once a brief partition heals; connections accepted meanwhile are connected
 *   upstream now. After a cut the port listens again (the same port).
 * - `dropAfter(text, every)`: while forwarding, each client→server chunk that contains `text` is
 *   counted (one counter over all connections); every `every`-th one is forwarded, then its
 *   connection is closed at once: the server gets the chunk and then end-of-file, the client sees
 *   the connection die without an answer. With `pg_notify`, this is a connection dropped right
 *   after a statement with a NOTIFY was sent: the statement commits, the client is told it failed.
 *   Deterministic (a counter, no randomness); `stopDropping()` ends it.
 *
 * `closeProxies()` in afterEach/afterAll closes every proxy still open.
 */

type Mode = 'forward' | 'blackhole' | 'cut';

interface Pair {
  client: Socket;
  upstream?: Socket;
  /** Bytes from the client not forwarded yet (blackhole). */
  toUpstream: Buffer[];
  /** Bytes from the upstream not forwarded yet (blackhole). */
  toClient: Buffer[];
}

const open = new Set<TcpProxy>();

export class TcpProxy {
  private server?: Server;
  private listenPort = 0;
  private currentMode: Mode = 'forward';
  private readonly pairs = new Set<Pair>();
  private closed = false;
  /** Connections accepted since the start. */
  accepted = 0;
  /** Chunks held back by a blackhole since the start (either direction). */
  heldChunks = 0;
  /** `dropAfter`: client→server chunks that contained the text while it was set, since the start. */
  matchedChunks = 0;
  /** `dropAfter`: connections closed after a matching chunk, since the start. */
  droppedConnections = 0;
  private drop?: { text: Buffer; every: number };

  constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  get port(): number {
    return this.listenPort;
  }

  get host(): string {
    return '127.0.0.1';
  }

  get mode(): Mode {
    return this.currentMode;
  }

  /** Connections currently open through the proxy. */
  get connections(): number {
    return this.pairs.size;
  }

  async start(): Promise<this> {
    await this.listen();
    open.add(this);
    return this;
  }

  /** Destroys every connection and refuses new ones until `restore()`. */
  async cut(): Promise<void> {
    this.currentMode = 'cut';
    for (const pair of [...this.pairs]) this.destroyPair(pair);
    await this.stopListening();
  }

  /** Accepts connections but forwards nothing, either way, until `restore()`. */
  blackhole(): void {
    if (this.currentMode === 'cut') throw new Error('blackhole() after cut(): restore() first');
    this.currentMode = 'blackhole';
  }

  /** Forwards again: re-listens after a cut; delivers what a blackhole held. */
  async restore(): Promise<void> {
    if (this.closed) throw new Error('proxy closed');
    if (!this.server) await this.listen(this.listenPort);
    this.currentMode = 'forward';
    for (const pair of this.pairs) {
      if (!pair.upstream) this.connectUpstream(pair);
      this.flush(pair);
    }
  }

  /**
   * From now on, every `every`-th client→server chunk containing `text` (counted since the start)
   * is forwarded and then its connection is closed (see the class comment).
   */
  dropAfter(text: string, every = 2): void {
    if (!Number.isInteger(every) || every < 1) throw new Error(`every must be a positive integer, got ${every}`);
    this.drop = { text: Buffer.from(text, 'utf8'), every };
  }

  /** Ends `dropAfter`: every chunk is forwarded again. */
  stopDropping(): void {
    this.drop = undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    open.delete(this);
    for (const pair of [...this.pairs]) this.destroyPair(pair);
    await this.stopListening();
  }

  private async listen(port = 0): Promise<void> {
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => undefined);
    this.server = server;
    this.listenPort = (server.address() as { port: number }).port;
  }

  private async stopListening(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.currentMode === 'cut' || this.closed) {
      client.destroy();
      return;
    }
    this.accepted += 1;
    const pair: Pair = { client, toUpstream: [], toClient: [] };
    this.pairs.add(pair);
    client.setNoDelay(true);
    client.on('error', () => undefined);
    client.on('close', () => this.destroyPair(pair));
    client.on('data', (chunk: Buffer) => {
      if (this.currentMode === 'forward' && pair.upstream && this.drop && chunk.includes(this.drop.text)) {
        this.matchedChunks += 1;
        if (this.matchedChunks % this.drop.every === 0) {
          this.dropAfterSending(pair, chunk);
          return;
        }
      }
      if (this.currentMode === 'forward' && pair.upstream) {
        pair.upstream.write(chunk);
      } else {
        this.heldChunks += 1;
        pair.toUpstream.push(chunk);
      }
    });
    if (this.currentMode === 'forward') this.connectUpstream(pair);
  }

  private connectUpstream(pair: Pair): void {
    const upstream = connect(this.targetPort, this.targetHost);
    upstream.setNoDelay(true);
    pair.upstream = upstream;
    upstream.on('error', () => undefined);
    upstream.on('close', () => this.destroyPair(pair));
    upstream.on('data', (chunk: Buffer) => {
      if (this.currentMode === 'forward') {
        pair.client.write(chunk);
      } else {
        this.heldChunks += 1;
        pair.toClient.push(chunk);
      }
    });
    // Written while connecting: the socket sends it once connected.
    this.flush(pair);
  }

  private flush(pair: Pair): void {
    if (pair.upstream) for (const chunk of pair.toUpstream.splice(0)) pair.upstream.write(chunk);
    for (const chunk of pair.toClient.splice(0)) pair.client.write(chunk);
  }

  /**
   * Sends `chunk` and then end-of-file upstream (the server reads the whole chunk before it sees
   * the end), and destroys the client side now: the client never gets the answer.
   */
  private dropAfterSending(pair: Pair, chunk: Buffer): void {
    if (!this.pairs.delete(pair)) return;
    this.droppedConnections += 1;
    const upstream = pair.upstream!;
    upstream.removeAllListeners('data');
    upstream.on('data', () => undefined);
    pair.client.destroy();
    upstream.end(chunk);
    // The server closes its side once it read the end; never leave the socket behind.
    const timer = setTimeout(() => upstream.destroy(), 10_000);
    timer.unref();
    upstream.once('close', () => clearTimeout(timer));
  }

  private destroyPair(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}

/** Starts a proxy to `host:port`; close it with `closeProxies()` in afterEach/afterAll. */
export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  return new TcpProxy(targetHost, targetPort).start();
}

/** A proxy to the server of a postgres:// URL. */
export async function startPgProxy(url: string): Promise<TcpProxy> {
  const u = new URL(url);
  return startTcpProxy(u.hostname || '127.0.0.1', Number(u.port || 5432));
}

export async function closeProxies(): Promise<void> {
  await Promise.all([...open].map((p) => p.close()));
}
