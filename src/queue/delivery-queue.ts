import { Inject, Injectable } from '@nestjs/common';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { compareDispatch, type DispatchKey } from '../core/job.model';

/**
 * The in-memory delivery queue: at most `QUEUE_CAPACITY` job ids (with their dispatch keys, so
 * that a late high-priority job overtakes the ones already waiting). It holds ids only; the
 * store holds the jobs. Workers wait on `take()`; every take frees a place and tells the feeder.
 */
@Injectable()
export class DeliveryQueue {
  readonly capacity: number;
  private readonly heap: DispatchKey[] = [];
  private readonly ids = new Set<string>();
  /** Keys held, by job type: what the per-type limits count as queued. */
  private readonly byType = new Map<string, number>();
  /** When each waiting id was queued (monotonic ms): a hold not started in time is given back. */
  private readonly queuedAt = new Map<string, number>();
  private readonly takers: Array<(key: DispatchKey | undefined) => void> = [];
  private readonly spaceListeners: Array<() => void> = [];
  private readonly waitingListeners: Array<() => void> = [];

  constructor(@Inject(KEEL_CONFIG) config: KeelConfig) {
    this.capacity = config.queueCapacity;
  }

  get depth(): number {
    return this.heap.length;
  }

  get free(): number {
    return this.capacity - this.heap.length;
  }

  /** Ids of this job type waiting in the queue. */
  depthOf(type: string): number {
    return this.byType.get(type) ?? 0;
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Adds keys; the feeder never offers more than `free`, and an id already held is not added twice. */
  push(keys: readonly DispatchKey[]): void {
    if (keys.length > this.free) throw new Error(`delivery queue overflow: ${keys.length} offered, ${this.free} free`);
    const now = performance.now();
    for (const key of keys) {
      if (this.ids.has(key.id)) continue;
      const taker = this.takers.shift();
      if (taker) {
        taker(key);
        continue;
      }
      this.ids.add(key.id);
      this.byType.set(key.type, this.depthOf(key.type) + 1);
      this.queuedAt.set(key.id, now);
      this.heapPush(key);
    }
  }

  /** The next job to run, in dispatch order; `undefined` when `signal` aborts first. */
  take(signal?: AbortSignal): Promise<DispatchKey | undefined> {
    if (signal?.aborted) return Promise.resolve(undefined);
    const key = this.tryTake();
    if (key) return Promise.resolve(key);
    return new Promise((resolve) => {
      const taker = (k: DispatchKey | undefined) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(k);
      };
      const onAbort = () => {
        const i = this.takers.indexOf(taker);
        if (i >= 0) this.takers.splice(i, 1);
        resolve(undefined);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.takers.push(taker);
      for (const listener of this.waitingListeners) listener();
    });
  }

  /** The next job to run, in dispatch order, if one waits now. */
  tryTake(): DispatchKey | undefined {
    const key = this.heapPop();
    if (!key) return undefined;
    this.forget(key);
    this.notifySpace();
    return key;
  }

  /** Removes and returns the ids that were queued before `before` (a `performance.now()` time). */
  takeQueuedBefore(before: number): DispatchKey[] {
    const stale: DispatchKey[] = [];
    const kept: DispatchKey[] = [];
    for (const key of this.heap) (this.queuedAt.get(key.id)! < before ? stale : kept).push(key);
    if (stale.length === 0) return stale;
    this.heap.length = 0;
    for (const key of kept) this.heapPush(key);
    for (const key of stale) this.forget(key);
    return stale;
  }

  private forget(key: DispatchKey): void {
    this.ids.delete(key.id);
    this.queuedAt.delete(key.id);
    const left = this.depthOf(key.type) - 1;
    if (left > 0) this.byType.set(key.type, left);
    else this.byType.delete(key.type);
  }

  /** Called whenever a worker waits with nothing queued. */
  onWaiting(listener: () => void): void {
    this.waitingListeners.push(listener);
  }

  /** Called whenever a place frees up. */
  onSpace(listener: () => void): void {
    this.spaceListeners.push(listener);
  }

  private notifySpace(): void {
    for (const listener of this.spaceListeners) listener();
  }

  private heapPush(key: DispatchKey): void {
    const h = this.heap;
    h.push(key);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (compareDispatch(h[i], h[parent]) >= 0) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  private heapPop(): DispatchKey | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && compareDispatch(h[l], h[m]) < 0) m = l;
        if (r < h.length && compareDispatch(h[r], h[m]) < 0) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
