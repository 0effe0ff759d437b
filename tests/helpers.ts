import { test } from '@grafana/plugin-e2e';
import type { Request, Response } from '@playwright/test';

/** The data source the provisioning files create for demos and end-to-end tests (the default one). */
export const DEMO_UID = 'wiz-demo';

/** The provisioned dashboard. */
export const DASHBOARD_UID = 'wiz-audit-overview';
export const DASHBOARD_FILE = 'wiz-audit-overview.json';

/** Skips the calling spec file when no Grafana answered at GRAFANA_URL (see playwright.config.ts). */
export function skipWithoutGrafana() {
  test.skip(
    process.env.GRAFANA_REACHABLE !== '1',
    `no Grafana answers at ${process.env.GRAFANA_URL || 'http://localhost:3000'}`
  );
}

/** A query as the browser sends it to /api/ds/query (template variables already applied). */
export interface SentQuery {
  refId: string;
  datasource?: { uid?: string };
  queryType?: string;
  [key: string]: unknown;
}

/** One refId's answer in a /api/ds/query response. */
export interface QueryResult {
  status?: number;
  error?: string;
  frames?: Array<{
    schema: {
      fields: Array<{ name: string; labels?: Record<string, string> }>;
      meta?: { preferredVisualisationType?: string };
    };
    data: { values: unknown[][] };
  }>;
}

/** The queries of the demo data source in a request; none for a request that is not a data query. */
export function demoQueries(request: Request): SentQuery[] {
  if (!request.url().includes('/api/ds/query') || request.method() !== 'POST') {
    return [];
  }
  const body = request.postDataJSON() as { queries?: SentQuery[] } | null;
  return (body?.queries ?? []).filter((q) => q.datasource?.uid === DEMO_UID);
}

/**
 * A waitForResponse predicate: the answer to a request holding a query of the demo data source
 * for which `match` holds. Matching by data source uid, never by query content alone: other data
 * sources' queries share the page.
 */
export function answersDemoQuery(match: (q: SentQuery) => boolean = () => true) {
  return (response: Response) => demoQueries(response.request()).some(match);
}

/** The rows of a result: the length of its frames' first fields, summed. */
export function rowCount(result: QueryResult | undefined): number {
  return (result?.frames ?? []).reduce((n, f) => n + (f.data.values[0]?.length ?? 0), 0);
}

/** The values of a named column across a result's frames. */
export function column(result: QueryResult | undefined, name: string): unknown[] {
  return (result?.frames ?? []).flatMap((f) => {
    const i = f.schema.fields.findIndex((field) => field.name === name);
    return i < 0 ? [] : (f.data.values[i] ?? []);
  });
}

/** The result of each demo query answered in `response`, by refId. */
export async function demoResults(response: Response): Promise<Array<{ query: SentQuery; result?: QueryResult }>> {
  const body = (await response.json()) as { results?: Record<string, QueryResult> };
  return demoQueries(response.request()).map((query) => ({ query, result: body.results?.[query.refId] }));
}
