import { Api } from './api.js';
import { BulkActions } from './bulk.js';
import { Charts } from './charts.js';
import { byTestId, el } from './dom.js';
import { followEvents } from './events.js';
import { JobDetail } from './job-detail.js';
import { JobList } from './job-list.js';
import { showCounts, showSchedules, TypesTable } from './overview.js';
import { parseSearch } from './search.js';

/** The least time between two reads of the counts: a burst of events costs a read or two, not one each. */
const REFRESH_GAP_MS = 250;

const message = byTestId('message');
const status = byTestId('live-status');

function showError(text) {
  message.textContent = text;
  message.hidden = false;
}

function setStatus(text) {
  status.textContent = text;
  status.dataset.status = text;
}

/** The key form, shown when a call is refused with 401; resolves with the key entered. */
function askForKey(refused) {
  const form = byTestId('api-key-form');
  const input = byTestId('api-key-input');
  byTestId('api-key-error').hidden = !refused;
  form.hidden = false;
  input.value = '';
  input.focus();
  setStatus('waiting for the API key');
  return new Promise((resolve) => {
    const submitted = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (key === '') return;
      form.removeEventListener('submit', submitted);
      form.hidden = true;
      setStatus('connecting…');
      resolve(key);
    };
    form.addEventListener('submit', submitted);
  });
}

/**
 * Runs `task` when called, one run at a time and at most every `gapMs`; calls that come during a
 * run make one more run after it, so the last call is always followed by a run that started later.
 */
function coalesced(task, gapMs) {
  let running = false;
  let again = false;
  return async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await task().catch((err) => showError(err.message));
        await new Promise((resolve) => setTimeout(resolve, gapMs));
      } while (again);
    } finally {
      running = false;
    }
  };
}

const api = new Api(askForKey);
const list = new JobList(api, { onOpen: (id) => openJob(id), onError: showError });
const detail = new JobDetail(api, {
  onJob: (job) => {
    message.hidden = true;
    list.apply(job);
    detail.apply(job);
  },
  onError: showError,
  onClose: () => list.select(null),
});

/**
 * The counts and the types' active counts are read from the server after events, not summed
 * here: an event does not say which state a job left (a retry, a cancel), and pruning removes jobs
 * without one. See docs/decisions.md.
 */
const refreshCounts = coalesced(async () => {
  const [queue, typeList] = await Promise.all([api.json('GET', 'v1/queue'), api.json('GET', 'v1/types')]);
  showCounts(queue.counts);
  types.show(typeList.items);
  showTypeChoices(typeList.items.map((type) => type.type));
}, REFRESH_GAP_MS);

/** The type filter's choices: the types this server knows, the one chosen kept. */
function showTypeChoices(names) {
  const select = byTestId('type-filter');
  const known = [...select.options].slice(1).map((option) => option.value);
  if (known.join('\n') === names.join('\n')) return;
  const chosen = select.value;
  select.replaceChildren(select.options[0], ...names.map((name) => el('option', { value: name }, name)));
  select.value = names.includes(chosen) ? chosen : '';
}

// a read of the types that was on its way during a change would show it undone: read them again after it
const types = new TypesTable(api, { onChange: () => void refreshCounts(), onError: showError });

/** The trends: read again after changes, at most every 2 s, and every 30 s as the minutes go by. */
const STATS_GAP_MS = 2_000;
const charts = new Charts(api);
const refreshStats = coalesced(() => charts.refresh(), STATS_GAP_MS);
setInterval(() => void refreshStats(), 30_000);

const refreshSchedules = coalesced(async () => showSchedules((await api.json('GET', 'v1/schedules')).items), REFRESH_GAP_MS);

function openJob(id) {
  list.select(id);
  detail.open(id).catch((err) => showError(err.message));
}

/** Everything read again: at the start, and after `reset` (events were missed). */
function loadAll() {
  void refreshCounts();
  void refreshSchedules();
  void refreshStats();
  list.reload().catch((err) => showError(err.message));
  detail.reloadAll().catch((err) => showError(err.message));
}

const bulk = new BulkActions(api, list, {
  onDone: () => {
    void refreshCounts();
    list.reload().catch((err) => showError(err.message));
  },
  onError: showError,
});

/** The list shown by new filters; a refused filter (a 400 naming it) is shown as the message. */
function filterJobs(filters) {
  message.hidden = true;
  list
    .filter(filters)
    .catch((err) => showError(err.message))
    .finally(() => bulk.show());
}

byTestId('state-filter').addEventListener('change', (event) => filterJobs({ state: event.target.value }));
byTestId('type-filter').addEventListener('change', (event) => {
  filterJobs({ type: event.target.value });
  charts.setType(event.target.value).catch((err) => showError(err.message));
});
byTestId('job-search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  let search;
  try {
    search = parseSearch(byTestId('job-search').value);
  } catch (err) {
    showError(err.message);
    return;
  }
  filterJobs({ search });
});

void followEvents(api, {
  onOpen: (first) => {
    // after a reconnect the missed events are replayed; the counts are read again in case a read
    // failed during the drop
    if (first) loadAll();
    else void refreshCounts();
  },
  onStatus: (state) => {
    setStatus(state === 'live' ? 'live' : 'reconnecting…');
    // a failure while the stream was down is not news once it is back
    if (state === 'live') message.hidden = true;
  },
  onMessage: ({ event, data }) => {
    if (event === 'reset') {
      loadAll();
      return;
    }
    // log lines name their job only: they go to its detail when it is open
    if (event === 'job.log') {
      detail.applyLog(data).catch((err) => showError(err.message));
      return;
    }
    const job = data?.job;
    if (!job) return;
    list.apply(job);
    // An event leaves out a large payload, result or error (named in `omitted`): the open job is read whole.
    if (!data.omitted?.length) detail.apply(job);
    else if (detail.id === job.id) detail.reload().catch((err) => showError(err.message));
    // progress changes no count
    if (event !== 'job.progress') {
      void refreshCounts();
      void refreshStats();
    }
    if (event === 'job.created' && job.idempotencyKey?.startsWith('schedule:')) void refreshSchedules();
  },
});
