import { firstValueFrom, take, toArray } from 'rxjs';
import type { Job } from '../core/job.model';
import { EVENT_BUFFER_SIZE, EventStream } from './event-stream';
import { JobEvents } from './job-events';

function job(n: number): Job {
  const now = Date.now();
  return {
    id: `00000000-0000-7000-8000-${String(n).padStart(12, '0')}`,
    type: 'noop',
    payload: {},
    state: 'pending',
    priority: 0,
    attempts: 0,
    maxAttempts: 3,
    backoffMs: 0,
    timeoutMs: 1_000,
    runAt: now,
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    result: null,
    lastError: null,
    idempotencyKey: null,
    requestHash: null,
    owner: null,
    cancelRequestedAt: null,
    progress: null,
  } as Job;
}

describe('EventStream', () => {
  it('sends a heartbeat when no event comes', async () => {
    const stream = new EventStream(new JobEvents());
    const items = await firstValueFrom(stream.stream({}, undefined, 10).pipe(take(2), toArray()));
    expect(items).toEqual([{ kind: 'heartbeat' }, { kind: 'heartbeat' }]);
    stream.onModuleDestroy();
  });

  it('replays from the ring after it wrapped around, and resets for an id it no longer has', async () => {
    const events = new JobEvents();
    const stream = new EventStream(events);
    const live = stream.stream({}).subscribe();
    events.created(Array.from({ length: EVENT_BUFFER_SIZE + 5 }, (_, i) => job(i)));
    live.unsubscribe();
    const last = events.lastId;
    // the five newest, in order
    const replay = await firstValueFrom(stream.stream({}, last - 5).pipe(take(5), toArray()));
    expect(replay.map((item) => (item.kind === 'event' ? item.event.id : item.kind))).toEqual([last - 4, last - 3, last - 2, last - 1, last]);
    // the oldest still kept is last − size + 1: its predecessor's id replays the whole ring
    const whole = await firstValueFrom(stream.stream({}, last - EVENT_BUFFER_SIZE).pipe(take(1)));
    expect(whole).toMatchObject({ kind: 'event', event: { id: last - EVENT_BUFFER_SIZE + 1 } });
    for (const gone of [last - EVENT_BUFFER_SIZE - 1, 1, last + 1]) {
      expect(await firstValueFrom(stream.stream({}, gone).pipe(take(1)))).toEqual({ kind: 'reset' });
    }
    stream.onModuleDestroy();
  });
});
