import { readFileSync } from 'fs';
import { join } from 'path';
import { checkBackfillStart, parseGoDuration, validateSettings, validateSourceIp, validateUrl } from './validation';

const now = new Date('2026-11-26T12:00:00Z');

describe('validateSettings', () => {
  it('accepts an empty-but-for-data-center configuration', () => {
    expect(validateSettings({ dataCenter: 'us17' }, now)).toEqual({});
  });

  it('names each bad field', () => {
    const errors = validateSettings(
      {
        dataCenter: 'US-17',
        authUrl: 'http://auth.example.com/token',
        backfillStart: '2027-01-01',
        pollInterval: '5s',
        requestsPerSecond: 0,
        pageSize: 501,
        retentionDays: -1,
      },
      now
    );
    expect(Object.keys(errors).sort()).toEqual(
      [
        'authUrl',
        'backfillStart',
        'dataCenter',
        'pageSize',
        'pollInterval',
        'requestsPerSecond',
        'retentionDays',
      ].sort()
    );
    expect(errors.dataCenter).toMatch(/not a Wiz data center.*us1, us17 or eu2/);
    expect(errors.pollInterval).toBe('5s is too short: at least 10s');
  });

  it('requires a data center unless an API URL is set', () => {
    expect(validateSettings({}, now).dataCenter).toMatch(/required/);
    expect(validateSettings({ apiUrl: 'https://gov.example.com' }, now)).toEqual({});
  });
});

describe('validateUrl', () => {
  // The backend's cases (pkg/settings/testdata/url_rule.json): the config editor must agree with
  // the backend on every one of them.
  const { cases } = JSON.parse(readFileSync(join(__dirname, '../pkg/settings/testdata/url_rule.json'), 'utf8')) as {
    cases: Array<{ url: string; error?: string }>;
  };

  it('reads the shared cases', () => expect(cases.length).toBeGreaterThan(10));
  it.each(cases.filter((c) => !c.error).map((c) => c.url))('accepts %p', (url) =>
    expect(validateUrl(url, '')).toBeUndefined()
  );
  it.each(cases.filter((c) => c.error).map((c) => [c.url, c.error!]))('rejects %p (%s)', (url, fragment) =>
    expect(validateUrl(url, '')).toContain(fragment)
  );
});

describe('checkBackfillStart', () => {
  it('warns past 180 days and rejects the future', () => {
    expect(checkBackfillStart('2026-06-01', now)).toEqual({});
    expect(checkBackfillStart('2026-06-01T00:00:00Z', now)).toEqual({});
    expect(checkBackfillStart('2025-01-01', now).warning).toMatch(/180 days/);
    expect(checkBackfillStart('2026-12-01', now).error).toMatch(/in the future/);
    expect(checkBackfillStart('June 1st', now).error).toMatch(/not a date/);
  });
});

describe('parseGoDuration', () => {
  it.each([
    ['10s', 10_000],
    ['1m30s', 90_000],
    ['1.5h', 5_400_000],
    ['0', 0],
  ])('%s', (value, ms) => expect(parseGoDuration(value)).toBe(ms));
  it.each(['10', '1 m', 'abc', ''])('rejects %p', (value) => expect(parseGoDuration(value)).toBeUndefined());
});

describe('source IPs', () => {
  it.each(['203.0.113.7', '10.0.0.0/8', '2001:db8::1', '2001:db8::/32', '::ffff:10.0.0.1', '$ips', '${ips:csv}'])(
    'accepts %s',
    (value) => expect(validateSourceIp(value)).toBeUndefined()
  );
  it.each(['10.0.0.256', '10.0.0.0/33', '2001:db8::/129', 'example.com', '01.2.3.4', '1::2::3'])('rejects %s', (value) =>
    expect(validateSourceIp(value)).toMatch(/not an IP address or CIDR/)
  );
});
