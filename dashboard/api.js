/** Where the key lives: this tab only, gone when it closes (contract §12). */
const KEY_STORAGE = 'keel.apiKey';

/**
 * Calls to the `/v1` routes of this server. With `API_KEY` set, a 401 asks for the key once, however
 * many calls were refused at the same moment, then sends those calls again with it as
 * `Authorization: Bearer <key>`. `askForKey(refused)` shows the form and resolves with what is entered.
 */
export class Api {
  #askForKey;
  #asking;

  constructor(askForKey) {
    this.#askForKey = askForKey;
  }

  /**
   * `fetch` with the key; resolves with the response once it is not a 401. `path` is relative
   * (`v1/jobs`): the page is `<base>/dashboard`, so it resolves to `<base>/v1/jobs` whatever
   * prefix and path a host application put Keel's routes under.
   */
  async fetch(path, init = {}) {
    for (;;) {
      const key = sessionStorage.getItem(KEY_STORAGE);
      const headers = { ...init.headers, ...(key ? { Authorization: `Bearer ${key}` } : {}) };
      const res = await fetch(path, { ...init, headers });
      if (res.status !== 401) return res;
      await res.body?.cancel();
      // A call sent with an older key than the one now kept: send it again, do not ask again.
      if (sessionStorage.getItem(KEY_STORAGE) === key) await this.#newKey(key !== null);
    }
  }

  /** A JSON call; resolves with the body (null for 204), rejects with the server's message. */
  async json(method, path, body) {
    const init = { method, headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await this.fetch(path, init);
    if (res.ok) return res.status === 204 ? null : res.json();
    // Keel's errors are {statusCode, error, message}; a proxy's may be anything.
    const error = await res.json().catch(() => null);
    throw new Error(error?.message ?? `HTTP ${res.status}`);
  }

  #newKey(refused) {
    this.#asking ??= this.#askForKey(refused).then((key) => {
      sessionStorage.setItem(KEY_STORAGE, key);
      this.#asking = undefined;
    });
    return this.#asking;
  }
}
