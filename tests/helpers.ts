import { test } from '@grafana/plugin-e2e';

/** The data source the provisioning files create for demos and end-to-end tests. */
export const DEMO_UID = 'wiz-demo';

/** Skips the calling spec file when no Grafana answered at GRAFANA_URL (see playwright.config.ts). */
export function skipWithoutGrafana() {
  test.skip(
    process.env.GRAFANA_REACHABLE !== '1',
    `no Grafana answers at ${process.env.GRAFANA_URL || 'http://localhost:3000'}`
  );
}
