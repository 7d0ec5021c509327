import { byTestId, el } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const MINUTE_MS = 60_000;
/** The minutes drawn: the last hour, the current minute last. */
const MINUTES = 60;
const WIDTH = 600;
const HEIGHT = 140;
const PAD = { left: 44, right: 8, top: 8, bottom: 18 };
/** The counts drawn as bars, side by side in each minute, in this order. */
const COUNTS = ['completed', 'failed', 'retried'];
/** Colours of the wait lines, one per type (CSS classes: the page allows no inline style). */
const LINES = 6;

/** An SVG element with attributes and children (text as text nodes, never markup). */
function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

/**
 * The trends of the last hour from `GET /v1/stats` (docs/api.md "Stats"): completed, failed and
 * retried attempts per minute as bars, and the 95th percentile of the wait per minute as a line per
 * type; of one type when the list's type filter names one. Inline SVG, drawn here.
 */
export class Charts {
  #api;
  #type = '';
  /** Bumped by every read: an answer for an older read is dropped. */
  #read = 0;

  constructor(api) {
    this.#api = api;
  }

  /** Shows one type's trends ('' for every type). */
  setType(type) {
    this.#type = type;
    return this.refresh();
  }

  async refresh() {
    const read = ++this.#read;
    const until = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
    const since = until - MINUTES * MINUTE_MS;
    const query = new URLSearchParams({ since: new Date(since).toISOString(), until: new Date(until).toISOString() });
    if (this.#type) query.set('type', this.#type);
    const stats = await this.#api.json('GET', `v1/stats?${query}`);
    if (read !== this.#read) return;
    showTotals(stats.totals, this.#type);
    byTestId('chart-counts').replaceChildren(...countsChart(stats.minutes, since));
    byTestId('chart-waits').replaceChildren(...waitsChart(stats.minutes, since));
  }
}

function showTotals(totals, type) {
  const wait = totals.wait.count > 0 ? `; wait p50 ${ms(totals.wait.p50Ms)}, p95 ${ms(totals.wait.p95Ms)}, p99 ${ms(totals.wait.p99Ms)}` : '';
  byTestId('stats-totals').textContent =
    `${type || 'every type'}, last hour: ${totals.created} created, ${totals.completed} completed, ${totals.failed} failed, ` +
    `${totals.retried} retried, ${totals.cancelled} cancelled${wait}`;
  for (const name of ['created', 'completed', 'failed', 'retried', 'cancelled']) byTestId('stats-totals').dataset[name] = String(totals[name]);
}

/** A wait bound as people read it: 1 ms … 2 s … 1 h (a percentile is its bucket's upper bound). */
function ms(value) {
  if (value === null) return '–';
  if (value >= 3_600_000) return `≥ ${value / 3_600_000} h`;
  if (value >= 1000) return `≤ ${value / 1000} s`;
  return `≤ ${value} ms`;
}

const x = (minute, since) => PAD.left + ((minute - since) / MINUTE_MS) * ((WIDTH - PAD.left - PAD.right) / MINUTES);
const slot = (WIDTH - PAD.left - PAD.right) / MINUTES;

function axes(top, label, since) {
  const bottom = HEIGHT - PAD.bottom;
  return [
    svg('line', { class: 'axis', x1: PAD.left, y1: bottom, x2: WIDTH - PAD.right, y2: bottom }),
    svg('line', { class: 'axis', x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: bottom }),
    svg('text', { class: 'tick', x: PAD.left - 4, y: PAD.top + 8, 'text-anchor': 'end' }, label(top)),
    svg('text', { class: 'tick', x: PAD.left - 4, y: bottom, 'text-anchor': 'end' }, '0'),
    svg('text', { class: 'tick', x: PAD.left, y: HEIGHT - 4 }, clock(since)),
    svg('text', { class: 'tick', x: WIDTH - PAD.right, y: HEIGHT - 4, 'text-anchor': 'end' }, 'now'),
  ];
}

function clock(at) {
  return new Date(at).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** Bars per minute: the counts of every type shown, summed. */
function countsChart(minutes, since) {
  const byMinute = new Map();
  for (const m of minutes) {
    const at = Date.parse(m.minute);
    const sum = byMinute.get(at) ?? { completed: 0, failed: 0, retried: 0 };
    for (const name of COUNTS) sum[name] += m[name];
    byMinute.set(at, sum);
  }
  const top = Math.max(1, ...[...byMinute.values()].flatMap((sum) => COUNTS.map((name) => sum[name])));
  const height = HEIGHT - PAD.top - PAD.bottom;
  const bars = [];
  for (const [at, sum] of [...byMinute].sort((a, b) => a[0] - b[0])) {
    COUNTS.forEach((name, i) => {
      if (sum[name] === 0) return;
      const h = Math.max(1, (sum[name] / top) * height);
      const width = slot / COUNTS.length;
      bars.push(
        svg(
          'rect',
          {
            class: `bar bar-${name}`,
            'data-testid': 'chart-bar',
            'data-minute': new Date(at).toISOString(),
            'data-metric': name,
            'data-n': sum[name],
            x: x(at, since) + i * width,
            y: HEIGHT - PAD.bottom - h,
            width: Math.max(1, width - 0.5),
            height: h,
          },
          svg('title', {}, `${clock(at)}: ${sum[name]} ${name}`),
        ),
      );
    });
  }
  return [...axes(top, String, since), ...bars];
}

/** A line per type: the 95th percentile of the wait in each minute with starts (log scale). */
function waitsChart(minutes, since) {
  const types = [...new Set(minutes.filter((m) => m.wait.count > 0).map((m) => m.type))].sort();
  const top = Math.max(1, ...minutes.filter((m) => m.wait.count > 0).map((m) => m.wait.p95Ms));
  const height = HEIGHT - PAD.top - PAD.bottom;
  const y = (value) => HEIGHT - PAD.bottom - (Math.log10(1 + value) / Math.log10(1 + top)) * height;
  const drawn = [];
  types.forEach((type, i) => {
    const points = minutes.filter((m) => m.type === type && m.wait.count > 0).map((m) => ({ at: Date.parse(m.minute), m }));
    const line = `line-${i % LINES}`;
    if (points.length > 1) {
      drawn.push(svg('polyline', { class: `wait ${line}`, points: points.map((p) => `${x(p.at, since) + slot / 2},${y(p.m.wait.p95Ms)}`).join(' ') }));
    }
    for (const { at, m } of points) {
      drawn.push(
        svg(
          'circle',
          {
            class: `wait ${line}`,
            'data-testid': 'chart-wait-point',
            'data-minute': m.minute,
            'data-type': type,
            'data-p95': m.wait.p95Ms,
            cx: x(at, since) + slot / 2,
            cy: y(m.wait.p95Ms),
            r: 2.5,
          },
          svg('title', {}, `${type} ${clock(at)}: ${m.wait.count} started, wait p50 ${ms(m.wait.p50Ms)}, p95 ${ms(m.wait.p95Ms)}`),
        ),
      );
    }
  });
  const legend = el('ul', { class: 'legend', 'data-testid': 'chart-waits-legend' }, ...types.map((type, i) => el('li', { class: `line-${i % LINES}` }, type)));
  byTestId('chart-waits-legend')?.replaceWith(legend);
  return [...axes(top, (value) => ms(value), since), ...drawn];
}
