import { byTestId, el, formatTime } from './dom.js';
import { isNewer, progressView, runsAt, shortId, stateBadge } from './job-view.js';
import { jobFilter } from './search.js';

const PAGE_SIZE = 50;

/**
 * The job list: newest first, every job until a filter is chosen (a state, a type, a search), a
 * page at a time. Kept live by `apply(job)` for every event: a row changes in place, leaves when
 * its job no longer matches the filters, and a job that comes to match them takes its place by id
 * (UUIDv7 ids sort by creation time).
 */
export class JobList {
  #api;
  #onOpen;
  #body = byTestId('jobs');
  #empty = byTestId('jobs-empty');
  #more = byTestId('jobs-more');
  /** id → the job as shown, with its row. */
  #rows = new Map();
  #filters = { state: '', type: '', search: { query: {}, payload: {} } };
  #selection = jobFilter(this.#filters);
  #nextCursor = null;
  /** The id of the last job of the pages loaded: an older job belongs to a page not loaded yet. */
  #oldestId = null;
  /** Bumped by every reload: a page that arrives for an older one is dropped. */
  #generation = 0;
  /** Pages on their way; events that come meanwhile are held, and applied once they are in. */
  #loads = 0;
  #held = [];
  #selectedId = null;

  /** `onOpen` gets the id of a row clicked; `onError` the message of a page that could not be read. */
  constructor(api, { onOpen, onError }) {
    this.#api = api;
    this.#onOpen = onOpen;
    this.#body.addEventListener('click', (event) => {
      const row = event.target.closest('tr[data-job-id]');
      if (row) this.#onOpen(row.dataset.jobId);
    });
    this.#more.addEventListener('click', () => this.loadMore().catch((err) => onError(err.message)));
  }

  /** Shows only the jobs that match `filters` (`state`, `type`: '' for any; `search`: a parsed search), from the newest. */
  filter(filters) {
    this.#filters = { ...this.#filters, ...filters };
    this.#selection = jobFilter(this.#filters);
    return this.reload();
  }

  /** The filters shown, as a bulk action's `filter`; `empty` when none is set. */
  get selection() {
    return this.#selection;
  }

  async reload() {
    const generation = ++this.#generation;
    await this.#whileLoading(async () => {
      const page = await this.#fetchPage(null);
      if (generation !== this.#generation) return;
      this.#rows.clear();
      this.#body.replaceChildren();
      this.#oldestId = null;
      this.#add(page);
    });
  }

  async loadMore() {
    const generation = this.#generation;
    this.#more.disabled = true;
    try {
      await this.#whileLoading(async () => {
        const page = await this.#fetchPage(this.#nextCursor);
        if (generation === this.#generation) this.#add(page);
      });
    } finally {
      this.#more.disabled = false;
    }
  }

  /** A job as an event or an action's answer shows it. */
  apply(job) {
    if (this.#loads > 0) {
      this.#held.push(job);
      return;
    }
    const shown = this.#rows.get(job.id);
    if (shown && !isNewer(job, shown.job)) return;
    const wanted = this.#selection.matches(job);
    if (shown && !wanted) {
      shown.row.remove();
      this.#rows.delete(job.id);
    } else if (shown) {
      const row = this.#row(job);
      shown.row.replaceWith(row);
      this.#rows.set(job.id, { job, row });
    } else if (wanted && (this.#nextCursor === null || job.id > this.#oldestId)) {
      const row = this.#row(job);
      const next = [...this.#body.children].find((other) => other.dataset.jobId < job.id);
      this.#body.insertBefore(row, next ?? null);
      this.#rows.set(job.id, { job, row });
    }
    this.#showEnds();
  }

  /** Marks the row of the job whose detail is open. */
  select(id) {
    this.#selectedId = id;
    for (const { job, row } of this.#rows.values()) row.classList.toggle('selected', job.id === id);
  }

  /**
   * A page may have been read before or after an event that comes while it is on its way: the
   * event waits for the page, and applies only if it is newer than what the page shows.
   */
  async #whileLoading(load) {
    this.#loads += 1;
    try {
      await load();
    } finally {
      this.#loads -= 1;
      if (this.#loads === 0) for (const job of this.#held.splice(0)) this.apply(job);
      this.#showEnds();
    }
  }

  #fetchPage(cursor) {
    const { state, type, search } = this.#filters;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE), ...search.query });
    if (state) query.set('state', state);
    if (type) query.set('type', type);
    if (cursor) query.set('cursor', cursor);
    return this.#api.json('GET', `v1/jobs?${query}`);
  }

  #add({ items, nextCursor }) {
    for (const job of items) {
      if (this.#rows.has(job.id)) continue;
      const row = this.#row(job);
      this.#body.append(row);
      this.#rows.set(job.id, { job, row });
    }
    this.#nextCursor = nextCursor;
    if (items.length > 0) this.#oldestId = items[items.length - 1].id;
  }

  #row(job) {
    return el(
      'tr',
      { 'data-testid': 'job-row', 'data-job-id': job.id, 'data-state': job.state, class: job.id === this.#selectedId ? 'selected' : null },
      el('td', {}, el('button', { type: 'button', class: 'link mono', title: job.id, 'aria-label': `Open job ${job.id}` }, shortId(job.id))),
      el('td', {}, job.type),
      el('td', {}, stateBadge(job)),
      el('td', { class: 'num' }, `${job.attempts} / ${job.maxAttempts}`),
      el('td', {}, progressView(job.progress)),
      el('td', {}, formatTime(job.createdAt)),
      el('td', {}, runsAt(job)),
    );
  }

  #showEnds() {
    this.#empty.hidden = this.#loads > 0 || this.#rows.size > 0;
    this.#more.hidden = this.#nextCursor === null;
  }
}
