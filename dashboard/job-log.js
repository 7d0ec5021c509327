import { byTestId, el } from './dom.js';

/** Lines read per request; an attempt keeps at most 101. */
const PAGE = 1000;

const key = (attempt, seq) => `${attempt}.${seq}`;

/**
 * The open job's log (docs/api.md "Handler logs"): read whole when the job is opened, then kept
 * live by its `job.log` events. Lines are keyed by attempt and seq, so a line that both the read
 * and an event bring is shown once, in its place.
 */
export class JobLog {
  #api;
  #list = byTestId('detail-log');
  #empty = byTestId('detail-log-empty');
  #id = null;
  #lines = new Map();

  constructor(api) {
    this.#api = api;
  }

  async open(id) {
    this.#id = id;
    this.#lines.clear();
    this.#render();
    await this.reload();
  }

  close() {
    this.#id = null;
    this.#lines.clear();
    this.#render();
  }

  async reload() {
    const id = this.#id;
    if (id === null) return;
    let cursor = null;
    do {
      const query = `limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page = await this.#api.json('GET', `v1/jobs/${id}/logs?${query}`);
      if (this.#id !== id) return;
      for (const line of page.items) this.#lines.set(key(line.attempt, line.seq), line);
      cursor = page.nextCursor;
    } while (cursor);
    this.#render();
  }

  /**
   * A `job.log` event. A line the event left out (its message and fields over 1 KiB) is read
   * from the log: the promise settles once it is.
   */
  async apply(data) {
    if (data.job?.id !== this.#id) return;
    let omitted = false;
    for (const line of data.lines) {
      if (line.omitted) omitted = true;
      else this.#lines.set(key(data.attempt, line.seq), { attempt: data.attempt, ...line });
    }
    this.#render();
    if (omitted) await this.reload();
  }

  #render() {
    const lines = [...this.#lines.values()].sort((a, b) => a.attempt - b.attempt || a.seq - b.seq);
    this.#list.replaceChildren(
      ...lines.map((line) =>
        el(
          'li',
          { 'data-testid': 'log-line', 'data-attempt': line.attempt, 'data-seq': line.seq },
          el('span', { class: 'log-meta' }, `#${line.attempt} ${line.at.slice(11, 23)}`),
          ' ',
          el('span', { 'data-testid': 'log-message' }, line.message),
          line.fields ? el('code', { 'data-testid': 'log-fields', class: 'log-fields' }, JSON.stringify(line.fields)) : null,
        ),
      ),
    );
    this.#empty.hidden = lines.length > 0;
  }
}
