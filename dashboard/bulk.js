import { byTestId } from './dom.js';

const DONE = { retry: 'retried', cancel: 'cancelled or asked to cancel', 'run-now': 'due now', delete: 'deleted' };

/**
 * The bulk action over every job the list's filters select (`POST /v1/jobs/actions`), asked for
 * with a confirmation that says what will happen; the answer says how many jobs it changed and how
 * many it skipped (a job in a state the action does not apply to is skipped, never forced).
 */
export class BulkActions {
  #api;
  #list;
  #onError;
  #action = byTestId('bulk-action');
  #apply = byTestId('bulk-apply');
  #needsFilter = byTestId('bulk-needs-filter');
  #confirm = byTestId('bulk-confirm');
  #result = byTestId('bulk-result');

  /** `list` gives the filters (`selection`); `onDone` runs after an action; `onError` gets a refused action's message. */
  constructor(api, list, { onDone, onError }) {
    this.#api = api;
    this.#list = list;
    this.#onError = onError;
    this.#apply.addEventListener('click', () => this.#ask());
    byTestId('bulk-confirm-no').addEventListener('click', () => (this.#confirm.hidden = true));
    byTestId('bulk-confirm-yes').addEventListener('click', () => void this.#run().then(onDone));
    this.show();
  }

  /** Enabled only while a filter is set: no click acts on every job. */
  show() {
    const empty = this.#list.selection.empty;
    this.#apply.disabled = empty;
    this.#needsFilter.hidden = !empty;
    this.#confirm.hidden = true;
  }

  #ask() {
    const described = Object.entries(this.#list.selection.filter)
      .map(([name, value]) => `${name} ${typeof value === 'object' ? JSON.stringify(value) : value}`)
      .join(', ');
    byTestId('bulk-confirm-text').textContent = `${this.#action.value} every job with ${described}?`;
    this.#result.hidden = true;
    this.#confirm.hidden = false;
    byTestId('bulk-confirm-yes').focus();
  }

  async #run() {
    const action = this.#action.value;
    this.#confirm.hidden = true;
    this.#apply.disabled = true;
    try {
      const { matched, affected, skipped } = await this.#api.json('POST', 'v1/jobs/actions', { action, filter: this.#list.selection.filter });
      this.#result.textContent = `${action}: ${affected} of ${matched} ${DONE[action]}, ${skipped} skipped`;
      this.#result.dataset.affected = String(affected);
      this.#result.hidden = false;
    } catch (err) {
      this.#onError(`${action}: ${err.message}`);
    } finally {
      this.show();
    }
  }
}
