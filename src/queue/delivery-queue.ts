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
  private readonly takenListeners: Array<() => void> = [];
  /** Keys held whose attempt the claim already started (`DispatchKey.started`). */
  private startedHeld = 0;

  constructor(@Inject(KEEL_CONFIG) config: KeelConfig) {
    this.capacity = config.queueCapacity;
  }

  get depth(): number {
    return this.heap.length;
  }

  get free(): number {
    return this.capacity - this.heap.length;
  }

  /** Keys held whose attempt the claim already started: jobs processing here that no handler runs yet. */
  get started(): number {
    return this.startedHeld;
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
        this.notifyTaken();
        taker(key);
        continue;
      }
      this.ids.add(key.id);
      this.byType.set(key.type, this.depthOf(key.type) + 1);
      this.queuedAt.set(key.id, now);
      if (key.started) this.startedHeld += 1;
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
    this.notifyTaken();
    this.notifySpace();
    return key;
  }

  /** Removes and returns the key of `id` if it waits here and its attempt was started by the claim. */
  takeStarted(id: string): DispatchKey | undefined {
    if (!this.ids.has(id)) return undefined;
    return this.takeWhere((key) => key.id === id && key.started !== undefined)[0];
  }

  /** Removes and returns every key whose attempt was started by the claim. */
  takeAllStarted(): DispatchKey[] {
    if (this.startedHeld === 0) return [];
    return this.takeWhere((key) => key.started !== undefined);
  }

  /** Removes and returns the ids that were queued before `before` (a `performance.now()` time). */
  takeQueuedBefore(before: number): DispatchKey[] {
    return this.takeWhere((key) => this.queuedAt.get(key.id)! < before);
  }

  /** Removes and returns the keys `picked` selects; the others keep their order. */
  private takeWhere(picked: (key: DispatchKey) => boolean): DispatchKey[] {
    const taken: DispatchKey[] = [];
    const kept: DispatchKey[] = [];
    for (const key of this.heap) (picked(key) ? taken : kept).push(key);
    if (taken.length === 0) return taken;
    this.heap.length = 0;
    for (const key of kept) this.heapPush(key);
    for (const key of taken) this.forget(key);
    return taken;
  }

  private forget(key: DispatchKey): void {
    this.ids.delete(key.id);
    this.queuedAt.delete(key.id);
    if (key.started) this.startedHeld -= 1;
    const left = this.depthOf(key.type) - 1;
    if (left > 0) this.byType.set(key.type, left);
    else this.byType.delete(key.type);
  }

  /** Called whenever a worker waits with nothing queued. */
  onWaiting(listener: () => void): void {
    this.waitingListeners.push(listener);
  }

  /** Called whenever a worker takes a key: the rate of takes is the rate this instance starts handlers at. */
  onTaken(listener: () => void): void {
    this.takenListeners.push(listener);
  }

  private notifyTaken(): void {
    for (const listener of this.takenListeners) listener();
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
