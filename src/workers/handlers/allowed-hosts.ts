/**
 * `HTTP_JOB_ALLOWED_HOSTS`: comma-separated `host` (any port) or `host:port` entries. Hosts
 * compare case-insensitively; IPv6 literals are written in brackets (`[::1]:8080`).
 */
export class AllowedHosts {
  private readonly anyPort = new Set<string>();
  private readonly withPort = new Set<string>();

  constructor(readonly entries: readonly string[]) {
    for (const entry of entries) {
      const match = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(entry.trim().toLowerCase());
      if (!match) throw new Error(`"${entry}" is not a host or host:port`);
      if (match[2] === undefined) this.anyPort.add(match[1]);
      else this.withPort.add(`${match[1]}:${Number(match[2])}`);
    }
  }

  static parse(list: string | undefined): AllowedHosts {
    return new AllowedHosts(
      (list ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    );
  }

  /** Why `url` may not be called, or undefined when it may. */
  refusal(url: string): string | undefined {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return `"${url}" is not a URL`;
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `only http and https URLs are allowed, got ${parsed.protocol}`;
    const host = parsed.hostname.toLowerCase();
    const port = parsed.port !== '' ? Number(parsed.port) : parsed.protocol === 'https:' ? 443 : 80;
    if (this.anyPort.has(host) || this.withPort.has(`${host}:${port}`)) return undefined;
    if (this.entries.length === 0) return `HTTP_JOB_ALLOWED_HOSTS is empty: the http job type may call no host`;
    return `host ${host}:${port} is not in HTTP_JOB_ALLOWED_HOSTS`;
  }
}
