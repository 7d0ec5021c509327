import type { KeelConfig } from '../config/keel-config';
import type { DispatchKey } from '../core/job.model';
import { DeliveryQueue } from './delivery-queue';

function queue(capacity: number): DeliveryQueue {
  return new DeliveryQueue({ queueCapacity: capacity } as KeelConfig);
}

function key(id: string, priority = 0, runAt = 1000): DispatchKey {
  return { id, type: 'noop', priority, runAt };
}

async function drain(q: DeliveryQueue): Promise<string[]> {
  const ids: string[] = [];
  while (q.depth > 0) ids.push((await q.take())!.id);
  return ids;
}

/** A promise's state without waiting for it: pending promises stay pending after a macrotask. */
async function settled<T>(promise: Promise<T>): Promise<{ value: T } | 'pending'> {
  const marker = Symbol('pending');
  const winner = await Promise.race([promise, new Promise<symbol>((resolve) => setImmediate(() => resolve(marker)))]);
  return winner === marker ? 'pending' : { value: winner as T };
}

describe('DeliveryQueue', () => {
  it('delivers in dispatch order: priority desc, then runAt, then id', async () => {
    const q = queue(100);
    q.push([key('c', 0, 10), key('x', -5, 1), key('b', 0, 10), key('hi', 100, 99), key('a', 0, 20), key('d', 1, 50), key('e', 0, 5)]);
    expect(await drain(q)).toEqual(['hi', 'd', 'e', 'b', 'c', 'a', 'x']);
  });

  it('keeps dispatch order over many pushes in scrambled order', async () => {
    // A heap bug shows only with enough entries and interleaved pushes and takes.
    const keys: DispatchKey[] = [];
    for (let i = 0; i < 200; i++) keys.push(key(`id-${String(i).padStart(3, '0')}`, ((i * 37) % 7) - 3, (i * 53) % 11));
    const scrambled = keys
      .map((k, i) => ({ k, order: (i * 7919) % 200 }))
      .sort((a, b) => a.order - b.order)
      .map(({ k }) => k);
    const expected = [...keys].sort((a, b) => b.priority - a.priority || a.runAt - b.runAt || (a.id < b.id ? -1 : 1)).map((k) => k.id);

    const q = queue(200);
    q.push(scrambled.slice(0, 100));
    const early = [(await q.take())!.id, (await q.take())!.id];
    q.push(scrambled.slice(100));
    const rest = await drain(q);
    // The first two were taken before the rest arrived: each was the head of what was there then.
    const firstHalf = [...scrambled.slice(0, 100)].sort((a, b) => b.priority - a.priority || a.runAt - b.runAt || (a.id < b.id ? -1 : 1));
    expect(early).toEqual([firstHalf[0].id, firstHalf[1].id]);
    expect(rest).toEqual(expected.filter((id) => !early.includes(id)));
  });

  it('a late high-priority key overtakes the waiting ones', async () => {
    const q = queue(10);
    q.push([key('a'), key('b')]);
    q.push([key('urgent', 10)]);
    expect((await q.take())!.id).toBe('urgent');
  });

  describe('capacity', () => {
    it('reports depth and free space', () => {
      const q = queue(3);
      expect([q.capacity, q.depth, q.free]).toEqual([3, 0, 3]);
      q.push([key('a'), key('b')]);
      expect([q.depth, q.free]).toEqual([2, 1]);
    });

    it('refuses a push beyond its free space and adds nothing of it', () => {
      const q = queue(3);
      q.push([key('a'), key('b')]);
      expect(() => q.push([key('c'), key('d')])).toThrow(/overflow/);
      expect(q.depth).toBe(2);
      expect(q.has('c')).toBe(false);
      q.push([key('c')]);
      expect(q.free).toBe(0);
      expect(() => q.push([key('d')])).toThrow(/overflow/);
    });

    it('frees a place on every take', async () => {
      const q = queue(2);
      q.push([key('a'), key('b')]);
      await q.take();
      expect(q.free).toBe(1);
      q.push([key('c')]);
      expect(q.depth).toBe(2);
    });
  });

  describe('an id is never held twice', () => {
    it('ignores an id already held, within one push and across pushes', async () => {
      const q = queue(10);
      q.push([key('a'), key('a', 5)]);
      q.push([key('a', 9), key('b')]);
      expect(q.depth).toBe(2);
      expect(await drain(q)).toEqual(['a', 'b']);
    });

    it('holds an id again once it was taken', async () => {
      const q = queue(10);
      q.push([key('a')]);
      await q.take();
      expect(q.has('a')).toBe(false);
      q.push([key('a')]);
      expect(q.has('a')).toBe(true);
      expect(q.depth).toBe(1);
    });
  });

  describe('take', () => {
    it('waits while empty and is resolved by a later push, in arrival order of the takers', async () => {
      const q = queue(10);
      const first = q.take();
      const second = q.take();
      expect(await settled(first)).toBe('pending');
      q.push([key('a')]);
      expect(await first).toEqual(key('a'));
      expect(await settled(second)).toBe('pending');
      q.push([key('b', 3, 7)]);
      expect(await second).toEqual(key('b', 3, 7));
      // Handed straight to the waiting takers: nothing stays in the queue.
      expect(q.depth).toBe(0);
      expect(q.has('a')).toBe(false);
    });

    it('resolves undefined when its signal aborts, and the next key then stays in the queue', async () => {
      const q = queue(10);
      const controller = new AbortController();
      const waiting = q.take(controller.signal);
      expect(await settled(waiting)).toBe('pending');
      controller.abort();
      expect(await waiting).toBeUndefined();
      q.push([key('a')]);
      expect(q.depth).toBe(1);
      expect(await q.take()).toEqual(key('a'));
    });

    it('resolves undefined at once for a signal already aborted, without consuming a key', async () => {
      const q = queue(10);
      q.push([key('a')]);
      expect(await q.take(AbortSignal.abort())).toBeUndefined();
      expect(q.depth).toBe(1);
    });

    it('a signal that never aborts does not keep the key from its taker', async () => {
      const q = queue(10);
      const waiting = q.take(new AbortController().signal);
      q.push([key('a')]);
      expect(await waiting).toEqual(key('a'));
    });
  });

  describe('onSpace', () => {
    it('calls every listener on each take that frees a place', async () => {
      const q = queue(10);
      const calls: string[] = [];
      q.onSpace(() => calls.push('one'));
      q.onSpace(() => calls.push('two'));
      q.push([key('a'), key('b')]);
      expect(calls).toEqual([]);
      await q.take();
      expect(calls).toEqual(['one', 'two']);
      await q.take();
      expect(calls).toEqual(['one', 'two', 'one', 'two']);
    });

    it('is not called when a key goes straight to a waiting taker or a take is aborted', async () => {
      const q = queue(10);
      const listener = jest.fn();
      q.onSpace(listener);
      const waiting = q.take();
      q.push([key('a')]);
      await waiting;
      await q.take(AbortSignal.abort());
      expect(listener).not.toHaveBeenCalled();
    });
  });
});
