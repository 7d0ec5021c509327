/**
 * `GET /v1/events` read with `fetch` and a stream reader rather than EventSource, which cannot
 * send the `Authorization` header. Like EventSource it reconnects after a drop, sending the id of
 * the last event it got as `Last-Event-ID`, so the server replays what was missed (or says `reset`).
 */

/** The server sends a comment at least every 15 s: this long without a byte, the stream is dead. */
const SILENCE_MS = 45_000;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;

/**
 * Follows the stream until the page closes. `onOpen(first)` runs each time it is open (the first
 * time, the page loads its data: nothing that happens after that is missed); `onMessage` gets
 * `{ id, event, data }` with `data` parsed; `onStatus` gets `live` or `reconnecting`.
 */
export async function followEvents(api, { onOpen, onMessage, onStatus }) {
  let lastId;
  let retryMs = RETRY_MIN_MS;
  for (let first = true; ;) {
    const connection = new AbortController();
    try {
      const headers = { Accept: 'text/event-stream', ...(lastId === undefined ? {} : { 'Last-Event-ID': lastId }) };
      const res = await api.fetch('v1/events', { headers, signal: connection.signal });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      onStatus('live');
      retryMs = RETRY_MIN_MS;
      onOpen(first);
      first = false;
      await readMessages(res.body, connection, (message) => {
        if (message.id !== undefined) lastId = message.id;
        try {
          onMessage(message);
        } catch (err) {
          // a fault of the page, not of the stream: reported as uncaught, the stream goes on
          reportError(err);
        }
      });
    } catch {
      // dropped, refused or cut by the silence check: reconnect below
    }
    connection.abort();
    onStatus('reconnecting');
    await new Promise((resolve) => setTimeout(resolve, retryMs));
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  }
}

/** Parses the stream's lines (`id:`, `event:`, `data:`, comments) into messages until it ends. */
async function readMessages(body, connection, onMessage) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let silence = setTimeout(() => connection.abort(), SILENCE_MS);
  let rest = '';
  let message = { data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      clearTimeout(silence);
      silence = setTimeout(() => connection.abort(), SILENCE_MS);
      const lines = (rest + value).split(/\r?\n/);
      rest = lines.pop();
      for (const line of lines) {
        if (line === '') {
          if (message.data.length > 0) onMessage({ id: message.id, event: message.event ?? 'message', data: JSON.parse(message.data.join('\n')) });
          message = { data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') message.id = text;
        else if (field === 'event') message.event = text;
        else if (field === 'data') message.data.push(text);
      }
    }
  } finally {
    clearTimeout(silence);
  }
}
