import { isUnderKeelApi, keelBaseOf } from './request-gate';

describe('the base of Keel’s routes', () => {
  it.each([
    ['', '', ''],
    ['api', '', '/api'],
    ['/api/', '', '/api'],
    ['', 'queue', '/queue'],
    ['api', 'queue', '/api/queue'],
    ['api/v2', 'ops/jobs', '/api/v2/ops/jobs'],
  ])('prefix %j and path %j: %j', (prefix, path, base) => {
    expect(keelBaseOf(prefix, path)).toBe(base);
  });
});

describe('which requests the gate takes: <base>/v1 and under it, as Express routes match', () => {
  it.each([
    ['/v1', ''],
    ['/v1/jobs', ''],
    ['/v1/jobs/', ''],
    ['/v1?state=pending', ''],
    ['/V1/Jobs', ''],
    ['/api/queue/v1/jobs', '/api/queue'],
    ['/API/Queue/v1/jobs/01900000-0000-7000-8000-000000000000/cancel', '/api/queue'],
    ['/api/queue/v1', '/api/queue'],
  ])('%s under %j: yes', (url, base) => {
    expect(isUnderKeelApi(url, base)).toBe(true);
  });

  it.each([
    ['/v10/jobs', ''],
    ['/host/v1/jobs', ''],
    ['/health/ready', ''],
    ['/api/v1/jobs', '/api/queue'],
    ['/api/queuex/v1/jobs', '/api/queue'],
    ['/api/queue/docs', '/api/queue'],
    ['/v1/jobs', '/api/queue'],
    ['/axb/v1/jobs', '/a.b'],
  ])('%s under %j: no', (url, base) => {
    expect(isUnderKeelApi(url, base)).toBe(false);
  });
});
