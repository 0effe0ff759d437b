import type { PluginOptions } from '@grafana/plugin-e2e';
import { defineConfig, devices } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';

const pluginE2eAuth = `${dirname(require.resolve('@grafana/plugin-e2e'))}/auth`;

const grafanaUrl = process.env.GRAFANA_URL || 'http://localhost:3000';

/**
 * Whether a Grafana answers at GRAFANA_URL. Checked once, synchronously, so that the login
 * step can be left out and every spec skips (instead of failing) when there is none.
 */
function grafanaAnswers(): boolean {
  if (process.env.GRAFANA_REACHABLE !== undefined) {
    return process.env.GRAFANA_REACHABLE === '1';
  }
  const probe = `fetch(new URL('/api/health', ${JSON.stringify(grafanaUrl)}), { signal: AbortSignal.timeout(3000) })
    .then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));`;
  try {
    execFileSync(process.execPath, ['-e', probe], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

const reachable = grafanaAnswers();
// Read by the specs (the config runs in every worker, so they all see the same answer).
process.env.GRAFANA_REACHABLE = reachable ? '1' : '0';

// Playwright's own browser download is not always possible: prefer a system Chromium.
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const launchOptions = existsSync(chromiumPath) ? { executablePath: chromiumPath, args: ['--no-sandbox'] } : {};

/**
 * See https://playwright.dev/docs/test-configuration.
 */
export default defineConfig<PluginOptions>({
  testDir: './tests',
  fullyParallel: true,
  forbidOnly: !!process.env.CI,
  retries: process.env.CI ? 2 : 0,
  reporter: process.env.CI ? 'list' : [['list'], ['html', { open: 'never' }]],
  use: {
    baseURL: grafanaUrl,
    trace: 'on-first-retry',
    launchOptions,
  },
  projects: reachable
    ? [
        // 1. Log in to Grafana and store the cookie on disk for use in other tests.
        { name: 'auth', testDir: pluginE2eAuth, testMatch: [/.*\.js/], use: { launchOptions } },
        // 2. Every test starts authenticated as the admin user.
        {
          name: 'chromium',
          use: { ...devices['Desktop Chrome'], launchOptions, storageState: 'playwright/.auth/admin.json' },
          dependencies: ['auth'],
        },
      ]
    : [{ name: 'chromium', use: { ...devices['Desktop Chrome'], launchOptions } }],
});
