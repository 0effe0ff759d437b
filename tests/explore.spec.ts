import { expect, test } from '@grafana/plugin-e2e';

import { answersDemoQuery, DEMO_UID, demoResults, skipWithoutGrafana } from './helpers';

skipWithoutGrafana();

test('a logs query in Explore returns a logs frame and its volume', async ({ page }) => {
  const state = {
    datasource: DEMO_UID,
    queries: [{ refId: 'A', datasource: { uid: DEMO_UID }, queryType: 'logs', limit: 100 }],
    range: { from: 'now-7d', to: 'now' },
  };
  // The demo data source's queries only: another data source's logs query may share the page.
  const logs = page.waitForResponse(answersDemoQuery((q) => q.refId === 'A' && q.queryType === 'logs'));
  const volume = page.waitForResponse(answersDemoQuery((q) => q.refId === 'log-volume-A'));
  await page.goto(`/explore?schemaVersion=1&orgId=1&left=${encodeURIComponent(JSON.stringify(state))}`);

  const logsResponse = await logs;
  expect(logsResponse.ok()).toBe(true);
  const result = (await demoResults(logsResponse)).find((r) => r.query.refId === 'A')?.result;
  const frame = result?.frames?.[0];
  expect(result?.error).toBeUndefined();
  expect(frame?.schema.fields.map((f) => f.name)).toEqual(
    expect.arrayContaining(['timestamp', 'body', 'severity', 'id', 'labels'])
  );
  expect(frame?.schema.meta?.preferredVisualisationType).toBe('logs');

  expect((await volume).ok()).toBe(true);
});
