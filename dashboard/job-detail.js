import { byTestId, formatJson, formatTime } from './dom.js';
import { isNewer, progressView, stateBadge } from './job-view.js';
import { JobLog } from './job-log.js';

/** A job's detail, with its cancel and retry buttons; kept live by `apply(job)` like the list. */
export class JobDetail {
  #api;
  #onJob;
  #onError;
  #section = byTestId('job-detail');
  #cancel = byTestId('job-cancel');
  #retry = byTestId('job-retry');
  #id = null;
  #job = null;
  #busy = false;
  #log;

  /** `onJob` gets the job an action answered with; `onError` the message of a refused action. */
  constructor(api, { onJob, onError, onClose }) {
    this.#api = api;
    this.#onJob = onJob;
    this.#onError = onError;
    this.#log = new JobLog(api);
    this.#cancel.addEventListener('click', () => void this.#act('cancel'));
    this.#retry.addEventListener('click', () => void this.#act('retry'));
    byTestId('job-close').addEventListener('click', () => {
      this.#id = null;
      this.#job = null;
      this.#log.close();
      this.#section.hidden = true;
      onClose();
    });
  }

  get id() {
    return this.#id;
  }

  async open(id) {
    this.#id = id;
    this.#job = null;
    this.#section.hidden = false;
    await Promise.all([this.reload(), this.#log.open(id)]);
    this.#section.querySelector('h2').focus();
  }

  async reload() {
    const id = this.#id;
    if (id === null) return;
    const job = await this.#api.json('GET', `v1/jobs/${id}`);
    if (this.#id === id) this.apply(job);
  }

  /** The job and its log read again (after events may have been missed). */
  async reloadAll() {
    await Promise.all([this.reload(), this.#log.reload()]);
  }

  /** A `job.log` event: lines for the open job's log. */
  applyLog(data) {
    return this.#log.apply(data);
  }

  apply(job) {
    if (job.id !== this.#id || (this.#job && !isNewer(job, this.#job))) return;
    this.#job = job;
    const text = (testId, value) => (byTestId(testId, this.#section).textContent = value);
    text('detail-id', job.id);
    text('detail-type', job.type);
    byTestId('detail-state', this.#section).replaceChildren(stateBadge(job));
    text('detail-attempts', `${job.attempts} of at most ${job.maxAttempts}`);
    byTestId('detail-progress', this.#section).replaceChildren(progressView(job.progress) || '–');
    text('detail-created', formatTime(job.createdAt));
    text('detail-run-at', formatTime(job.runAt));
    text('detail-started', formatTime(job.startedAt));
    text('detail-finished', formatTime(job.finishedAt));
    text('detail-last-error', job.lastError ?? '–');
    text('detail-payload', formatJson(job.payload));
    text('detail-result', formatJson(job.result));
    this.#showButtons();
  }

  /** Cancel while it may still be stopped; retry once it failed or was cancelled (contract §4). */
  #showButtons() {
    const job = this.#job;
    const cancellable = job && (job.state === 'pending' || (job.state === 'processing' && !job.cancelRequestedAt));
    const retryable = job && (job.state === 'failed' || job.state === 'cancelled');
    this.#cancel.disabled = this.#busy || !cancellable;
    this.#retry.disabled = this.#busy || !retryable;
  }

  async #act(action) {
    const id = this.#id;
    this.#busy = true;
    this.#showButtons();
    try {
      this.#onJob(await this.#api.json('POST', `v1/jobs/${id}/${action}`));
    } catch (err) {
      this.#onError(`${action} of job ${id}: ${err.message}`);
    } finally {
      this.#busy = false;
      this.#showButtons();
    }
  }
}
