import { getBackendSrv, isFetchError } from '@grafana/runtime';
import { lastValueFrom } from 'rxjs';

import { SyncStatus } from './types';

function resourceUrl(uid: string, path: string): string {
  return `/api/datasources/uid/${encodeURIComponent(uid)}/resources/${path}`;
}

/** A readable message from a failed resource call. */
export function errorMessage(err: unknown): string {
  if (isFetchError(err)) {
    const data = err.data as { message?: string; error?: string } | string | undefined;
    const detail = typeof data === 'string' ? data : (data?.message ?? data?.error);
    return detail || err.statusText || `HTTP ${err.status}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** `GET sync/status` of a saved data source. */
export async function fetchSyncStatus(uid: string): Promise<SyncStatus> {
  const response = await lastValueFrom(
    getBackendSrv().fetch<SyncStatus>({
      method: 'GET',
      url: resourceUrl(uid, 'sync/status'),
      showErrorAlert: false,
      showSuccessAlert: false,
    })
  );
  return response.data;
}

/** `POST sync/run`: starts a sync now; the backend answers 202. */
export async function runSync(uid: string): Promise<void> {
  const response = await lastValueFrom(
    getBackendSrv().fetch<unknown>({
      method: 'POST',
      url: resourceUrl(uid, 'sync/run'),
      showErrorAlert: false,
      showSuccessAlert: false,
    })
  );
  if (response.status !== 202) {
    throw new Error(`Unexpected answer from sync/run: HTTP ${response.status}`);
  }
}
