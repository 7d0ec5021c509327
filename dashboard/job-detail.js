import { byTestId, el, formatJson, formatTime } from './dom.js';
import { isNewer, progressView, stateBadge } from './job-view.js';
import { JobLog } from './job-log.js';

/**
 * A job's detail, with its cancel, retry and run-now buttons and its ended attempts; kept live by
 * `apply(job)` like the list. The attempts are read again whenever the job's state or attempt
 * number changes (an attempt ends with one or the other).
 */
export class JobDetail {
  #api;
  #onJob;
  #onError;
  #section = byTestId('job-detail');
  #cancel = byTestId('job-cancel');
  #retry = byTestId('job-retry');
  #runNow = byTestId('job-run-now');
  #attempts = byTestId('detail-attempt-rows');
  #attemptsEmpty = byTestId('detail-attempts-empty');
  /** Bumped by every read of the attempts: an answer for an older read is dropped. */
  #attemptsRead = 0;
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
    this.#runNow.addEventListener('click', () => void this.#act('run-now'));
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
    this.#attempts.replaceChildren();
    this.#attemptsEmpty.hidden = true;
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
    const before = this.#job;
    this.#job = job;
    if (!before || before.state !== job.state || before.attempts !== job.attempts) void this.#readAttempts(job.id);
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

  /** Cancel while it may still be stopped; retry once it failed or was cancelled (contract §4); run now while it waits for its time. */
  #showButtons() {
    const job = this.#job;
    const cancellable = job && (job.state === 'pending' || (job.state === 'processing' && !job.cancelRequestedAt));
    const retryable = job && (job.state === 'failed' || job.state === 'cancelled');
    const delayed = job && job.state === 'pending' && Date.parse(job.runAt) > Date.now();
    this.#cancel.disabled = this.#busy || !cancellable;
    this.#retry.disabled = this.#busy || !retryable;
    this.#runNow.disabled = this.#busy || !delayed;
  }

  async #readAttempts(id) {
    const read = ++this.#attemptsRead;
    try {
      const { items } = await this.#api.json('GET', `v1/jobs/${id}/attempts`);
      if (read !== this.#attemptsRead || id !== this.#id) return;
      this.#attempts.replaceChildren(...items.map(attemptRow));
      this.#attemptsEmpty.hidden = items.length > 0;
    } catch (err) {
      if (read === this.#attemptsRead) this.#onError(`attempts of job ${id}: ${err.message}`);
    }
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

/** One ended attempt; its stack, when it has one, folded under its error. */
function attemptRow(attempt) {
  const error = attempt.error ?? '–';
  return el(
    'tr',
    { 'data-testid': 'attempt-row', 'data-outcome': attempt.outcome },
    el('td', { class: 'num' }, String(attempt.attempt)),
    el('td', {}, el('span', { class: `badge outcome-${attempt.outcome}` }, attempt.outcome)),
    el('td', {}, formatTime(attempt.startedAt)),
    el('td', { class: 'num' }, `${attempt.durationMs} ms`),
    el('td', { class: 'mono' }, attempt.instance ?? '–'),
    el(
      'td',
      { class: 'attempt-error' },
      attempt.stack
        ? el('details', {}, el('summary', { 'data-testid': 'attempt-error' }, error), el('pre', { 'data-testid': 'attempt-stack' }, attempt.stack))
        : el('span', { 'data-testid': 'attempt-error' }, error),
    ),
  );
}
