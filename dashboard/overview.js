import { byTestId, el, formatTime } from './dom.js';
import { STATES } from './job-view.js';

/** `GET /v1/queue`'s counts: each element's text is the number alone. */
export function showCounts(counts) {
  for (const state of STATES) byTestId(`count-${state}`).textContent = String(counts[state] ?? 0);
}

/** The job types with their limits, and a button that pauses or resumes each (`PATCH /v1/types/:type`). */
export class TypesTable {
  #api;
  #onChange;
  #onError;
  #body = byTestId('types');

  /** `onChange` runs after a type was changed here; `onError` gets the message of a refused change. */
  constructor(api, { onChange, onError }) {
    this.#api = api;
    this.#onChange = onChange;
    this.#onError = onError;
    this.#body.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-paused]');
      if (button) void this.#setPaused(button, button.dataset.paused === 'true');
    });
  }

  show(types) {
    this.#body.replaceChildren(...types.map((type) => this.#row(type)));
  }

  async #setPaused(button, paused) {
    const type = button.closest('tr').dataset.type;
    button.disabled = true;
    try {
      const updated = await this.#api.json('PATCH', `v1/types/${encodeURIComponent(type)}`, { paused });
      this.#body.querySelector(`tr[data-type="${CSS.escape(type)}"]`)?.replaceWith(this.#row(updated));
      this.#onChange();
    } catch (err) {
      button.disabled = false;
      this.#onError(`${paused ? 'pause' : 'resume'} of ${type}: ${err.message}`);
    }
  }

  #row(type) {
    const rate = type.rateLimit ? `${type.rateLimit.max} per ${duration(type.rateLimit.perMs)}` : 'none';
    const button = type.paused
      ? el('button', { type: 'button', 'data-testid': 'type-resume', 'data-paused': 'false', 'aria-label': `Resume ${type.type}` }, 'Resume')
      : el('button', { type: 'button', 'data-testid': 'type-pause', 'data-paused': 'true', 'aria-label': `Pause ${type.type}` }, 'Pause');
    return el(
      'tr',
      { 'data-testid': 'type-row', 'data-type': type.type, 'data-paused': String(type.paused) },
      el('th', { scope: 'row' }, type.type, type.paused ? el('span', { class: 'badge paused' }, 'paused') : null),
      el('td', { class: 'num' }, type.concurrency === null ? 'none' : String(type.concurrency)),
      el('td', {}, rate),
      el('td', { class: 'num' }, String(type.counts.pending)),
      el('td', { class: 'num' }, String(type.counts.processing)),
      el('td', {}, button),
    );
  }
}

/** A window in the unit people read it in: 1000 ms is "1 s". */
function duration(ms) {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}

export function showSchedules(schedules) {
  byTestId('schedules').replaceChildren(
    ...schedules.map((schedule) =>
      el(
        'tr',
        { 'data-testid': 'schedule-row', 'data-schedule': schedule.name },
        el('th', { scope: 'row' }, schedule.name, schedule.paused ? el('span', { class: 'badge paused' }, 'paused') : null),
        el('td', {}, el('code', {}, schedule.cron), schedule.timezone === 'UTC' ? null : ` (${schedule.timezone})`),
        el('td', {}, schedule.type),
        el('td', {}, formatTime(schedule.nextRunAt)),
        el('td', {}, formatTime(schedule.lastRunAt)),
      ),
    ),
  );
  byTestId('schedules-empty').hidden = schedules.length > 0;
}
