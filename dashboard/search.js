/**
 * The search box of the job list, read into the filters of `GET /v1/jobs` (docs/api.md "Search").
 * Terms are separated by spaces:
 *   0193b0c2-6a4e          an id prefix
 *   key:order-1234         an idempotency key
 *   payload.customerId=42  a payload field (the value a JSON literal if it reads as one, else text)
 *   created>=2026-12-01    created at or after; created<2026-12-02 before
 * The server checks each filter and answers a bad one with a 400 naming it; this only splits terms.
 */
export function parseSearch(text) {
  const query = {};
  const payload = {};
  for (const term of text.trim().split(/\s+/).filter(Boolean)) {
    let match;
    if ((match = /^key:(.+)$/.exec(term))) {
      query.idempotencyKey = match[1];
    } else if ((match = /^(payload\.[^=]+)=(.*)$/.exec(term))) {
      query[match[1]] = match[2];
      payload[match[1].slice('payload.'.length)] = literal(match[2]);
    } else if ((match = /^created>=(.+)$/.exec(term))) {
      query.createdAfter = match[1];
    } else if ((match = /^created<(.+)$/.exec(term))) {
      query.createdBefore = match[1];
    } else if (/^[0-9a-f-]+$/i.test(term)) {
      query.idPrefix = term;
    } else {
      throw new Error(`search: "${term}" is none of an id prefix, key:…, payload.field=value, created>=… or created<…`);
    }
  }
  return { query, payload };
}

/** What the server reads a payload value as: the JSON literal, else the text. */
function literal(text) {
  try {
    const value = JSON.parse(text);
    return typeof value === 'object' && value !== null ? text : value;
  } catch {
    return text;
  }
}

/**
 * The filters as one predicate over a job (for the events that come while a filter is on), and as
 * the `filter` of a bulk action (`payload` typed values). Times compare as instants.
 */
export function jobFilter({ state, type, search }) {
  const { query, payload } = search;
  const at = (iso) => Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(iso) ? `${iso}T00:00:00Z` : iso);
  const matches = (job) =>
    (!state || job.state === state) &&
    (!type || job.type === type) &&
    (!query.idPrefix || job.id.startsWith(query.idPrefix.toLowerCase())) &&
    (!query.idempotencyKey || job.idempotencyKey === query.idempotencyKey) &&
    (!query.createdAfter || Date.parse(job.createdAt) >= at(query.createdAfter)) &&
    (!query.createdBefore || Date.parse(job.createdAt) < at(query.createdBefore)) &&
    Object.entries(payload).every(([path, value]) => fieldOf(job.payload, path) === value);
  const filter = { ...(state ? { state } : {}), ...(type ? { type } : {}) };
  for (const name of ['idPrefix', 'idempotencyKey', 'createdAfter', 'createdBefore']) if (query[name]) filter[name] = query[name];
  if (Object.keys(payload).length > 0) filter.payload = payload;
  return { matches, filter, empty: Object.keys(filter).length === 0 };
}

function fieldOf(value, path) {
  for (const name of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, name)) return undefined;
    value = value[name];
  }
  return value;
}
