import { expect, test } from '@grafana/plugin-e2e';

import { DEMO_UID, skipWithoutGrafana } from './helpers';

skipWithoutGrafana();

test('a logs query in Explore returns a logs frame and its volume', async ({ page }) => {
  const state = {
    datasource: DEMO_UID,
    queries: [{ refId: 'A', datasource: { uid: DEMO_UID }, queryType: 'logs', limit: 100 }],
    range: { from: 'now-7d', to: 'now' },
  };
  const isQuery = (url: string) => url.includes('/api/ds/query');
  const logs = page.waitForResponse(
    (r) => isQuery(r.url()) && (r.request().postData() ?? '').includes('"queryType":"logs"')
  );
  const volume = page.waitForResponse(
    (r) => isQuery(r.url()) && (r.request().postData() ?? '').includes('"refId":"log-volume-A"')
  );
  await page.goto(`/explore?schemaVersion=1&orgId=1&left=${encodeURIComponent(JSON.stringify(state))}`);

  const logsResponse = await logs;
  expect(logsResponse.ok()).toBe(true);
  const body = await logsResponse.json();
  const frame = body.results.A.frames[0];
  expect(frame.schema.fields.map((f: { name: string }) => f.name)).toEqual(
    expect.arrayContaining(['timestamp', 'body', 'severity', 'id', 'labels'])
  );
  expect(frame.schema.meta.preferredVisualisationType).toBe('logs');

  expect((await volume).ok()).toBe(true);
});
