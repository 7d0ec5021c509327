import { firstValueFrom, take, toArray, type Observable } from 'rxjs';
import { EVENT_MAX_BYTES } from '../core/job-notice';
import type { Job } from '../core/job.model';
import { CommitStream } from '../store/commit-stream';
import { LocalEventFeed } from '../store/event-feed';
import type { JobStore } from '../store/job-store';
import { EVENT_BUFFER_SIZE, EventStream, LINGER_MS, type StreamItem } from './event-stream';
import { feedItem as anyFeedItem, JobEvents, type FeedItem, type KeelJobEvent } from './job-events';

function job(n: number, overrides: Partial<Job> = {}): Job {
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
    cancelRequestedAt: null,
    progress: null,
    ...overrides,
  };
}

/** A stream over an embedded store's feed; `commit` makes n jobs' created events commit. */
function setup(): { feed: LocalEventFeed; stream: EventStream; commit: (from: number, n: number) => void } {
  const commits = new CommitStream();
  const feed = new LocalEventFeed(commits);
  const stream = new EventStream(new JobEvents({ events: feed } as unknown as JobStore));
  const commit = (from: number, n: number) => {
    commits.publish(Array.from({ length: n }, (_, i) => ({ kind: 'created' as const, job: job(from + i) })));
  };
  return { feed, stream, commit };
}

const ids = (items: StreamItem[]) => items.map((item) => (item.kind === 'event' ? item.event.id : item.kind));
const firstItems = (items: Observable<StreamItem>, n: number) => firstValueFrom(items.pipe(take(n), toArray()));

describe('EventStream', () => {
  it('sends a heartbeat when no event comes', async () => {
    const { stream } = setup();
    expect(await firstItems(await stream.open({}, undefined, 10), 2)).toEqual([{ kind: 'heartbeat' }, { kind: 'heartbeat' }]);
    stream.onModuleDestroy();
  });

  it('replays from the ring after it wrapped around, and resets for an id it no longer has or never issued', async () => {
    const { stream, commit } = setup();
    const live = (await stream.open({})).subscribe();
    commit(0, EVENT_BUFFER_SIZE + 5);
    live.unsubscribe();
    const last = stream.newestId();
    expect(ids(await firstItems(await stream.open({}, last - 5), 5))).toEqual([last - 4, last - 3, last - 2, last - 1, last]);
    // the oldest kept is last − size + 1: its predecessor's id replays the whole ring
    expect(ids(await firstItems(await stream.open({}, last - EVENT_BUFFER_SIZE), 1))).toEqual([last - EVENT_BUFFER_SIZE + 1]);
    for (const gone of [last - EVENT_BUFFER_SIZE - 1, 1, last + 1]) expect(await firstItems(await stream.open({}, gone), 1)).toEqual([{ kind: 'reset' }]);
    stream.onModuleDestroy();
  });

  it('events committed while a client’s stream is being set up wait for it: none is lost between replay and live', async () => {
    const { stream, commit } = setup();
    const items = await stream.open({});
    commit(0, 3);
    expect(ids(await firstItems(items, 3))).toHaveLength(3);
    stream.onModuleDestroy();
  });

  it('a gap is a reset on every live stream; an id from before it resets, one from after it resumes', async () => {
    const { stream, commit } = setup();
    const seen: StreamItem[] = [];
    const live = (await stream.open({})).subscribe((item) => seen.push(item));
    commit(0, 2);
    const beforeGap = stream.newestId();
    (stream as unknown as { take: (item: { kind: 'gap' }) => void }).take({ kind: 'gap' });
    commit(10, 2);
    expect(seen.map((item) => item.kind)).toEqual(['event', 'event', 'reset', 'event', 'event']);
    live.unsubscribe();
    expect(await firstItems(await stream.open({}, beforeGap), 1)).toEqual([{ kind: 'reset' }]);
    const afterGap = ids(seen).at(-2) as number;
    expect(ids(await firstItems(await stream.open({}, afterGap), 1))).toEqual([ids(seen).at(-1)]);
    stream.onModuleDestroy();
  });
});

describe('EventStream and the feed', () => {
  afterEach(() => jest.useRealTimers());
  const settle = () => new Promise((resolve) => setImmediate(resolve));

  it('keeps the store’s feed running while a client is there and a minute after the last one left, then lets it and the buffer go', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick'] });
    const { feed, stream, commit } = setup();
    const first = (await stream.open({})).subscribe();
    expect(feed.started).toBe(true);
    commit(0, 3);
    first.unsubscribe();
    jest.advanceTimersByTime(LINGER_MS - 1);
    await settle();
    expect(feed.started).toBe(true);
    // a client within the minute resumes from the buffer
    const last = stream.newestId();
    expect(ids(await firstItems(await stream.open({}, last - 1), 1))).toEqual([last]);
    jest.advanceTimersByTime(LINGER_MS);
    await settle();
    expect(feed.started).toBe(false);
    // the buffer went with it: the old id resets
    expect(await firstItems(await stream.open({}, last - 1), 1)).toEqual([{ kind: 'reset' }]);
    stream.onModuleDestroy();
  });
});

describe('feedItem', () => {
  /** The item of a job's change: its event is a `KeelJobEvent`. */
  const feedItem = (committed: Parameters<typeof anyFeedItem>[0]) =>
    anyFeedItem(committed) as Exclude<FeedItem, { kind: 'event' }> | { kind: 'event'; event: KeelJobEvent; data: string };
  const committed = (j: Job) => ({ id: 1, name: 'job.completed' as const, job: j, omitted: [] });

  it('keeps a small job whole', () => {
    const item = feedItem(committed(job(1, { payload: { a: 1 }, result: { ok: true } })));
    expect(item.kind === 'event' && [item.event.job.payload, item.event.job.result, item.event.omitted]).toEqual([{ a: 1 }, { ok: true }, undefined]);
  });

  it('leaves out a payload, result and lastError over 1 KiB, and a progress that would make the event too large', () => {
    const big = 'x'.repeat(2_000);
    const item = feedItem(committed(job(1, { payload: { big }, result: { big }, lastError: big, progress: { p: 'y'.repeat(4_000) } })));
    if (item.kind !== 'event') throw new Error('an event');
    expect(item.event.omitted).toEqual(['payload', 'result', 'lastError']);
    expect([item.event.job.payload, item.event.job.result, item.event.job.lastError]).toEqual([null, null, null]);
    expect(Buffer.byteLength(item.data)).toBeLessThanOrEqual(EVENT_MAX_BYTES);
    const crowded = feedItem(committed(job(2, { idempotencyKey: 'k'.repeat(255), type: 't'.repeat(3_000), progress: { p: 'y'.repeat(4_000) } })));
    if (crowded.kind !== 'event') throw new Error('an event');
    expect([crowded.event.omitted, crowded.event.job.progress]).toEqual([['progress'], null]);
    expect(JSON.parse(crowded.data)).toEqual({ job: crowded.event.job, omitted: ['progress'] });
  });
});
