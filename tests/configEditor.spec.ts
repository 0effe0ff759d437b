import { expect, test } from '@grafana/plugin-e2e';

import { selectors } from '../src/components/selectors';
import { DEMO_UID, skipWithoutGrafana } from './helpers';

skipWithoutGrafana();

// The demo data source is provisioned, so Grafana's page offers "Test", not "Save & test" (a
// provisioned data source cannot be saved from the UI).
test('"Test" on the provisioned demo data source reports the cache', async ({ gotoDataSourceConfigPage, page }) => {
  const configPage = await gotoDataSourceConfigPage(DEMO_UID);
  const health = page.waitForResponse((r) => r.url().includes(`/api/datasources/uid/${DEMO_UID}/health`));
  await page.getByRole('button', { name: 'Test', exact: true }).click();
  await expect(health).toBeOK();
  await expect(configPage).toHaveAlert('success', { hasText: /^OK: / });
});

test('the config page shows the live sync status', async ({ gotoDataSourceConfigPage, page }) => {
  await gotoDataSourceConfigPage(DEMO_UID);
  await expect(page.getByTestId(selectors.config.dataCenter)).toBeVisible();
  await expect(page.getByTestId(selectors.syncStatus.state)).toHaveText(/Idle|Syncing|Backfilling|Error/);
  await expect(page.getByTestId(selectors.syncStatus.events)).toHaveText(/^\d[\d,]*$/);
  await expect(page.getByTestId(selectors.syncStatus.cacheFile)).toContainText(DEMO_UID);

  const run = page.waitForResponse((r) => r.url().endsWith(`/uid/${DEMO_UID}/resources/sync/run`));
  await page.getByTestId(selectors.syncStatus.syncNow).click();
  expect((await run).status()).toBe(202);
  await expect(page.getByText('Sync started')).toBeVisible();
});
