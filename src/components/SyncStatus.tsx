import React, { useCallback, useEffect, useRef, useState } from 'react';
import { css } from '@emotion/css';
import { dateTimeFormat, dateTimeFormatTimeAgo, GrafanaTheme2 } from '@grafana/data';
import { Alert, Badge, BadgeColor, Button, FieldSet, Stack, Text, useStyles2 } from '@grafana/ui';

import { errorMessage, fetchSyncStatus, runSync } from '../api';
import { SyncState, SyncStatus } from '../types';
import { selectors } from './selectors';

export const SYNC_STATUS_REFRESH_MS = 5000;

const STATES: Record<SyncState, { text: string; color: BadgeColor }> = {
  idle: { text: 'Idle', color: 'green' },
  syncing: { text: 'Syncing', color: 'blue' },
  backfilling: { text: 'Backfilling', color: 'blue' },
  error: { text: 'Error', color: 'red' },
};

function formatTime(value: string | null | undefined): string {
  if (!value) {
    return '—';
  }
  return `${dateTimeFormat(value)} (${dateTimeFormatTimeAgo(value)})`;
}

function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) {
    return '';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

interface Props {
  uid: string;
  refreshMs?: number;
}

/** The sync status of a saved data source, refreshed while it is shown. */
export function SyncStatusPanel({ uid, refreshMs = SYNC_STATUS_REFRESH_MS }: Props) {
  const styles = useStyles2(getStyles);
  const [status, setStatus] = useState<SyncStatus>();
  const [loadError, setLoadError] = useState<string>();
  const [runState, setRunState] = useState<{ running: boolean; message?: string; error?: string }>({
    running: false,
  });
  const refreshRef = useRef<() => void>(() => {});

  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      if (timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
      try {
        const next = await fetchSyncStatus(uid);
        if (!cancelled) {
          setStatus(next);
          setLoadError(undefined);
        }
      } catch (err) {
        if (!cancelled) {
          setLoadError(errorMessage(err));
        }
      }
      if (!cancelled) {
        timer = setTimeout(load, refreshMs);
      }
    };
    refreshRef.current = () => void load();
    load();
    return () => {
      cancelled = true;
      refreshRef.current = () => {};
      if (timer !== undefined) {
        clearTimeout(timer);
      }
    };
  }, [uid, refreshMs]);

  const onSyncNow = useCallback(async () => {
    setRunState({ running: true });
    try {
      await runSync(uid);
      setRunState({ running: false, message: 'Sync started' });
      refreshRef.current();
    } catch (err) {
      setRunState({ running: false, error: errorMessage(err) });
    }
  }, [uid]);

  const state = status ? (STATES[status.state] ?? { text: status.state, color: 'orange' }) : undefined;
  const done = status?.backfill ? Math.min(1, Math.max(0, status.backfill.done)) : undefined;

  return (
    <FieldSet label="Sync status">
      <div data-testid={selectors.syncStatus.container}>
        <Stack direction="column" gap={1}>
          <Text color="secondary" variant="bodySmall">
            Reflects the saved settings; refreshed every {Math.round(refreshMs / 1000)} seconds.
          </Text>
          {loadError && (
            <Alert severity="warning" title="Sync status unavailable" data-testid={selectors.syncStatus.loadError}>
              {loadError}
            </Alert>
          )}
          {status && state && (
            <dl className={styles.list}>
              <dt>State</dt>
              <dd data-testid={selectors.syncStatus.state}>
                <Badge text={state.text} color={state.color} />
              </dd>
              <dt>Events cached</dt>
              <dd data-testid={selectors.syncStatus.events}>{status.events.toLocaleString('en-US')}</dd>
              <dt>Synced up to</dt>
              <dd data-testid={selectors.syncStatus.syncedUpTo}>{formatTime(status.syncedUpTo)}</dd>
              <dt>Oldest / newest event</dt>
              <dd>
                {status.oldest ? dateTimeFormat(status.oldest) : '—'} /{' '}
                {status.newest ? dateTimeFormat(status.newest) : '—'}
              </dd>
              <dt>Last sync</dt>
              <dd>{formatTime(status.lastSyncAt)}</dd>
              <dt>Next sync</dt>
              <dd>{formatTime(status.nextSyncAt)}</dd>
              {status.backfill && done !== undefined && (
                <>
                  <dt>Backfill</dt>
                  <dd data-testid={selectors.syncStatus.backfill}>
                    <Stack direction="row" gap={1} alignItems="center">
                      <progress
                        className={styles.progress}
                        value={done}
                        max={1}
                        aria-label="Backfill progress"
                        title={`From ${status.backfill.from} to ${status.backfill.to}`}
                      />
                      <span>{done === 1 ? 'complete' : `${Math.floor(done * 100)}%`}</span>
                    </Stack>
                  </dd>
                </>
              )}
              {status.backend === 'postgres' ? (
                <>
                  <dt>Cache</dt>
                  <dd data-testid={selectors.syncStatus.cacheFile}>
                    PostgreSQL, shared by Grafana&apos;s replicas{' '}
                    {status.cacheBytes !== undefined && `(${formatBytes(status.cacheBytes)})`}
                  </dd>
                  <dt>Syncing replica</dt>
                  <dd data-testid={selectors.syncStatus.leader}>
                    {status.leader ?? 'none at the moment'}
                    {status.role && ` (this replica is the ${status.role})`}
                  </dd>
                </>
              ) : (
                <>
                  <dt>Cache file</dt>
                  <dd data-testid={selectors.syncStatus.cacheFile}>
                    <code>{status.cacheFile ?? '—'}</code>{' '}
                    {status.cacheBytes !== undefined && `(${formatBytes(status.cacheBytes)})`}
                  </dd>
                </>
              )}
            </dl>
          )}
          {status?.lastError && (
            <Alert severity="error" title="Last sync failed" data-testid={selectors.syncStatus.lastError}>
              {status.lastError}
            </Alert>
          )}
          <Stack direction="row" gap={1} alignItems="center">
            <Button
              variant="secondary"
              icon={runState.running ? 'spinner' : 'sync'}
              disabled={runState.running}
              onClick={onSyncNow}
              data-testid={selectors.syncStatus.syncNow}
            >
              Sync now
            </Button>
            {runState.message && <Text color="success">{runState.message}</Text>}
            {runState.error && <Text color="error">{runState.error}</Text>}
          </Stack>
        </Stack>
      </div>
    </FieldSet>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  list: css({
    display: 'grid',
    gridTemplateColumns: 'max-content auto',
    columnGap: theme.spacing(2),
    rowGap: theme.spacing(0.5),
    margin: 0,
    dt: { color: theme.colors.text.secondary, fontWeight: theme.typography.fontWeightMedium },
    dd: { margin: 0, overflowWrap: 'anywhere' },
  }),
  progress: css({
    width: theme.spacing(30),
    height: theme.spacing(1),
    accentColor: theme.colors.primary.main,
  }),
});
