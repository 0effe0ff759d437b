import { expect, test } from '@grafana/plugin-e2e';

import {
  answersDemoQuery,
  DASHBOARD_FILE,
  DASHBOARD_UID,
  demoQueries,
  demoResults,
  QueryResult,
  rowCount,
  SentQuery,
  skipWithoutGrafana,
} from './helpers';

skipWithoutGrafana();

interface ProvisionedPanel {
  title: string;
  targets?: Array<{ queryType?: string }>;
}

// New terms may rightly be none: the demo tenant's principals keep their addresses.
const mayBeEmpty = (queryType: string | undefined) => queryType === 'newTerms';

/** The status label of every series in a time series answer. */
function seriesStatuses(result: QueryResult | undefined): string[] {
  return (result?.frames ?? []).flatMap((f) =>
    f.schema.fields.flatMap((field) => (field.labels?.status !== undefined ? [field.labels.status] : []))
  );
}

const sameList = (got: unknown, want: string[]) => JSON.stringify(got) === JSON.stringify(want);

test('every panel of the overview renders data and no panel error', async ({
  gotoDashboardPage,
  readProvisionedDashboard,
  page,
}) => {
  const dashboard = (await readProvisionedDashboard({ fileName: DASHBOARD_FILE })) as unknown as {
    panels: ProvisionedPanel[];
  };
  const answers: Array<ReturnType<typeof demoResults>> = [];
  page.on('response', (r) => {
    if (demoQueries(r.request()).length > 0) {
      answers.push(demoResults(r));
    }
  });
  const dashboardPage = await gotoDashboardPage({ uid: DASHBOARD_UID });
  await dashboardPage.waitForPanelsQueriesToComplete({ scrollAll: true });

  for (const { title, targets } of dashboard.panels) {
    const panel = dashboardPage.getPanelByTitle(title);
    await panel.scrollIntoView();
    await expect(panel.locator, title).toBeVisible();
    await expect(panel.getErrorIcon(), `${title} shows an error`).toHaveCount(0);
    if (!targets?.some((t) => mayBeEmpty(t.queryType))) {
      await expect(panel.locator, `${title} shows no data`).not.toContainText('No data');
    }
  }

  // Every query the page sent (panels and variables) answered without error, with rows.
  const results = (await Promise.all(answers)).flat();
  expect(results.length).toBeGreaterThanOrEqual(dashboard.panels.length);
  for (const { query, result } of results) {
    const what = JSON.stringify(query);
    expect(result?.error, what).toBeUndefined();
    if (!mayBeEmpty(query.queryType)) {
      expect(rowCount(result), what).toBeGreaterThan(0);
    }
  }
});

test('time series are named by their label value', async ({ gotoDashboardPage, selectors }) => {
  const dashboardPage = await gotoDashboardPage({ uid: DASHBOARD_UID });
  const panel = dashboardPage.getPanelByTitle('Events over time by status');
  const series = (name: string) =>
    dashboardPage.getByGrafanaSelector(selectors.components.VizLegend.seriesName(name), { root: panel.locator });
  await expect(series('SUCCESS')).toBeVisible();
  await expect(series('FAILED')).toBeVisible();
});

test('the status variable changes the panels', async ({ gotoDashboardPage, page }) => {
  // "Events over time by status" follows $status; "Failed and access-denied logins" has its own.
  const eventsByStatus = (status: string) => (q: SentQuery) =>
    q.queryType === 'timeseries' && q.groupBy === 'status' && sameList(q.statuses, [status]);

  for (const status of ['FAILED', 'ACCESS_DENIED']) {
    const answer = page.waitForResponse(answersDemoQuery(eventsByStatus(status)));
    await gotoDashboardPage({ uid: DASHBOARD_UID, queryParams: new URLSearchParams({ 'var-status': status }) });
    const response = await answer;
    expect(response.ok()).toBe(true);
    const result = (await demoResults(response)).find(({ query }) => eventsByStatus(status)(query))?.result;
    expect(result?.error).toBeUndefined();
    const statuses = seriesStatuses(result);
    expect(statuses.length).toBeGreaterThan(0);
    expect(new Set(statuses)).toEqual(new Set([status]));
  }
});

test('the failed-admin-actions annotation is off by default and its toggle runs it', async ({
  gotoDashboardPage,
  page,
  selectors,
}) => {
  const isAnnotation = (q: SentQuery) => q.refId === 'Anno';
  let ranBeforeToggle = false;
  page.on('request', (r) => {
    ranBeforeToggle ||= demoQueries(r).some(isAnnotation);
  });
  const dashboardPage = await gotoDashboardPage({ uid: DASHBOARD_UID });
  await dashboardPage.waitForPanelsQueriesToComplete();
  expect(ranBeforeToggle).toBe(false);

  const toggle = dashboardPage.getByGrafanaSelector(
    selectors.pages.Dashboard.SubMenu.Annotations.annotationToggle('Failed admin actions')
  );
  await expect(toggle).not.toBeChecked();
  const answer = page.waitForResponse(answersDemoQuery(isAnnotation));
  await toggle.click();
  const response = await answer;
  expect(response.ok()).toBe(true);
  for (const { result } of await demoResults(response)) {
    expect(result?.error).toBeUndefined();
  }
  await expect(toggle).toBeChecked();
});
