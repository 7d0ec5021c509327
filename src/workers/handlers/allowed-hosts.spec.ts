import { AllowedHosts } from './allowed-hosts';

describe('AllowedHosts', () => {
  describe('parse', () => {
    it('reads comma-separated entries, trimming spaces and skipping empty ones', () => {
      expect(AllowedHosts.parse(' a.example , b.example:8080 ,, ').entries).toEqual(['a.example', 'b.example:8080']);
    });

    it('an unset or empty list allows nothing and says the setting is empty', () => {
      for (const list of [undefined, '', ' , ']) {
        const hosts = AllowedHosts.parse(list);
        expect(hosts.entries).toEqual([]);
        expect(hosts.refusal('http://127.0.0.1/')).toMatch(/HTTP_JOB_ALLOWED_HOSTS is empty/);
        expect(hosts.refusal('https://example.com/')).toMatch(/HTTP_JOB_ALLOWED_HOSTS is empty/);
      }
    });

    it('refuses an entry that is not host or host:port', () => {
      expect(() => new AllowedHosts(['a:b:c'])).toThrow(/is not a host or host:port/);
      expect(() => new AllowedHosts(['host:'])).toThrow(/is not a host or host:port/);
      expect(() => new AllowedHosts(['host:123456'])).toThrow(/is not a host or host:port/);
    });
  });

  describe('refusal', () => {
    it('a host:port entry allows that host on that port only', () => {
      const hosts = AllowedHosts.parse('127.0.0.1:8080');
      expect(hosts.refusal('http://127.0.0.1:8080/hook?x=1')).toBeUndefined();
      expect(hosts.refusal('https://127.0.0.1:8080/')).toBeUndefined();
      expect(hosts.refusal('http://127.0.0.1:8081/')).toBe('host 127.0.0.1:8081 is not in HTTP_JOB_ALLOWED_HOSTS');
      expect(hosts.refusal('http://127.0.0.1/')).toBe('host 127.0.0.1:80 is not in HTTP_JOB_ALLOWED_HOSTS');
      expect(hosts.refusal('http://127.0.0.2:8080/')).toMatch(/127\.0\.0\.2:8080 is not in HTTP_JOB_ALLOWED_HOSTS/);
    });

    it('a host entry without a port allows any port', () => {
      const hosts = AllowedHosts.parse('hooks.example.com');
      for (const url of ['http://hooks.example.com/', 'https://hooks.example.com/', 'http://hooks.example.com:1/', 'https://hooks.example.com:65535/x']) {
        expect([url, hosts.refusal(url)]).toEqual([url, undefined]);
      }
      expect(hosts.refusal('http://other.example.com/')).toMatch(/not in HTTP_JOB_ALLOWED_HOSTS/);
      // no subdomain or suffix matching
      expect(hosts.refusal('http://a.hooks.example.com/')).toMatch(/not in HTTP_JOB_ALLOWED_HOSTS/);
      expect(hosts.refusal('http://hooks.example.com.evil.test/')).toMatch(/not in HTTP_JOB_ALLOWED_HOSTS/);
    });

    it('compares hosts case-insensitively, on both sides', () => {
      const hosts = AllowedHosts.parse('Hooks.Example.COM:8443,lower.example');
      expect(hosts.refusal('https://hooks.example.com:8443/')).toBeUndefined();
      expect(hosts.refusal('https://HOOKS.EXAMPLE.COM:8443/')).toBeUndefined();
      expect(hosts.refusal('http://LOWER.Example/')).toBeUndefined();
    });

    it('uses the default port of the scheme when the URL has none: 80 for http, 443 for https', () => {
      const hosts = AllowedHosts.parse('web.example:80,secure.example:443');
      expect(hosts.refusal('http://web.example/')).toBeUndefined();
      expect(hosts.refusal('http://web.example:80/')).toBeUndefined();
      expect(hosts.refusal('https://web.example/')).toBe('host web.example:443 is not in HTTP_JOB_ALLOWED_HOSTS');
      expect(hosts.refusal('https://secure.example/')).toBeUndefined();
      expect(hosts.refusal('https://secure.example:443/')).toBeUndefined();
      expect(hosts.refusal('http://secure.example/')).toBe('host secure.example:80 is not in HTTP_JOB_ALLOWED_HOSTS');
    });

    it('normalises a port with leading zeros in the entry', () => {
      expect(AllowedHosts.parse('h.example:0080').refusal('http://h.example/')).toBeUndefined();
    });

    it('handles IPv6 literals in brackets', () => {
      const withPort = AllowedHosts.parse('[::1]:8080');
      expect(withPort.refusal('http://[::1]:8080/')).toBeUndefined();
      expect(withPort.refusal('http://[0:0:0:0:0:0:0:1]:8080/')).toBeUndefined(); // the URL parser normalises it
      expect(withPort.refusal('http://[::1]:8081/')).toBe('host [::1]:8081 is not in HTTP_JOB_ALLOWED_HOSTS');
      expect(withPort.refusal('http://[::1]/')).toBe('host [::1]:80 is not in HTTP_JOB_ALLOWED_HOSTS');
      expect(withPort.refusal('http://127.0.0.1:8080/')).toMatch(/not in HTTP_JOB_ALLOWED_HOSTS/);

      const anyPort = AllowedHosts.parse('[::1],[FE80::ABCD]');
      expect(anyPort.refusal('http://[::1]/')).toBeUndefined();
      expect(anyPort.refusal('https://[::1]:9999/')).toBeUndefined();
      expect(anyPort.refusal('http://[fe80::abcd]:1234/')).toBeUndefined();
      expect(anyPort.refusal('http://[::2]/')).toMatch(/\[::2\]:80 is not in HTTP_JOB_ALLOWED_HOSTS/);
    });

    it('refuses what is not a URL', () => {
      const hosts = AllowedHosts.parse('example.com');
      for (const url of ['', 'example.com', '//example.com/', 'http//example.com', 'not a url']) {
        expect([url, hosts.refusal(url)]).toEqual([url, `"${url}" is not a URL`]);
      }
    });

    it('refuses every scheme but http and https, even for an allowed host', () => {
      const hosts = AllowedHosts.parse('example.com');
      expect(hosts.refusal('ftp://example.com/')).toBe('only http and https URLs are allowed, got ftp:');
      expect(hosts.refusal('file:///etc/passwd')).toBe('only http and https URLs are allowed, got file:');
      expect(hosts.refusal('ws://example.com/')).toBe('only http and https URLs are allowed, got ws:');
      expect(hosts.refusal('HTTP://EXAMPLE.COM/')).toBeUndefined();
    });

    it('does not let credentials in the URL fool the host check', () => {
      const hosts = AllowedHosts.parse('good.example');
      expect(hosts.refusal('http://good.example@evil.example/')).toMatch(/evil\.example:80 is not in HTTP_JOB_ALLOWED_HOSTS/);
      expect(hosts.refusal('http://user:pw@good.example/')).toBeUndefined();
    });
  });
});
