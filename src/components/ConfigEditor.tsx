import React, { ChangeEvent, useMemo, useState } from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import {
  Alert,
  Button,
  CollapsableSection,
  DatePickerWithInput,
  Field,
  FieldSet,
  Input,
  SecretInput,
  Stack,
} from '@grafana/ui';

import { SecureKey, SETTINGS_DEFAULTS, WizOptions, WizSecureJsonData } from '../types';
import { checkBackfillStart, parseBackfillStart, validateSettings } from '../validation';
import { selectors } from './selectors';
import { SyncStatusPanel } from './SyncStatus';

export type ConfigEditorProps = DataSourcePluginOptionsEditorProps<WizOptions, WizSecureJsonData>;

type NumberKey = 'requestsPerSecond' | 'pageSize' | 'retentionDays';
type TextKey = 'dataCenter' | 'apiUrl' | 'authUrl' | 'pollInterval' | 'backfillStart';

const ADVANCED_KEYS: ReadonlyArray<keyof WizOptions> = [
  'apiUrl',
  'authUrl',
  'pollInterval',
  'requestsPerSecond',
  'pageSize',
  'retentionDays',
];

/** The calendar works in local time; backfillStart is a calendar date. */
function toPickerDate(value: string | undefined): Date | undefined {
  const parsed = value ? parseBackfillStart(value.trim()) : undefined;
  return parsed ? new Date(parsed.getUTCFullYear(), parsed.getUTCMonth(), parsed.getUTCDate()) : undefined;
}

function toDateString(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export function ConfigEditor({ options, onOptionsChange }: ConfigEditorProps) {
  const { jsonData, secureJsonFields } = options;
  const secureJsonData: WizSecureJsonData = options.secureJsonData ?? {};
  const [touched, setTouched] = useState<Partial<Record<string, boolean>>>({});
  const now = useMemo(() => new Date(), []);
  const errors = validateSettings(jsonData, now);
  const backfill = checkBackfillStart(jsonData.backfillStart, now);
  const [advancedOpen, setAdvancedOpen] = useState(() =>
    ADVANCED_KEYS.some((key) => jsonData[key] !== undefined && jsonData[key] !== '')
  );
  // Required-field messages wait until the field was left or the data source was saved once.
  const showRequired = (key: string) => touched[key] || (options.version ?? 1) > 1;
  const touch = (key: string) => () => setTouched((t) => ({ ...t, [key]: true }));

  const setJsonData = (patch: Partial<WizOptions>) => {
    const next: WizOptions = { ...jsonData, ...patch };
    for (const [key, value] of Object.entries(patch)) {
      if (value === undefined || value === '') {
        delete next[key as keyof WizOptions];
      }
    }
    onOptionsChange({ ...options, jsonData: next });
  };

  const onText = (key: TextKey) => (event: ChangeEvent<HTMLInputElement>) =>
    setJsonData({ [key]: event.currentTarget.value });

  const onNumber = (key: NumberKey) => (event: ChangeEvent<HTMLInputElement>) => {
    const raw = event.currentTarget.value.trim();
    setJsonData({ [key]: raw === '' ? undefined : Number(raw) });
  };

  const onSecretChange = (key: SecureKey) => (event: ChangeEvent<HTMLInputElement>) =>
    onOptionsChange({
      ...options,
      secureJsonData: { ...options.secureJsonData, [key]: event.currentTarget.value },
    });

  const onSecretReset = (key: SecureKey) => () =>
    onOptionsChange({
      ...options,
      secureJsonFields: { ...options.secureJsonFields, [key]: false },
      secureJsonData: { ...options.secureJsonData, [key]: '' },
    });

  const secretError = (key: SecureKey, label: string) =>
    !secureJsonFields?.[key] && !secureJsonData[key]?.trim() && showRequired(key) ? `${label} is required` : undefined;

  const dataCenterError =
    errors.dataCenter && (jsonData.dataCenter?.trim() || showRequired('dataCenter')) ? errors.dataCenter : undefined;
  const clientIdError = secretError('clientId', 'Client ID');
  const clientSecretError = secretError('clientSecret', 'Client Secret');

  return (
    <Stack direction="column" gap={2}>
      <FieldSet label="Connection">
        <Field
          label="Data center"
          description="The Wiz data center of your tenant, as shown under Tenant Info in the Wiz portal: for example us1, us17 or eu2."
          required={!jsonData.apiUrl}
          invalid={Boolean(dataCenterError)}
          error={dataCenterError}
        >
          <Input
            id="wiz-data-center"
            data-testid={selectors.config.dataCenter}
            value={jsonData.dataCenter ?? ''}
            placeholder="us17"
            width={40}
            onChange={onText('dataCenter')}
            onBlur={touch('dataCenter')}
          />
        </Field>
        <Field
          label="Client ID"
          description="Of a Wiz service account with the admin:audit scope."
          required
          invalid={Boolean(clientIdError)}
          error={clientIdError}
        >
          <SecretInput
            id="wiz-client-id"
            data-testid={selectors.config.clientId}
            isConfigured={Boolean(secureJsonFields?.clientId)}
            value={secureJsonData.clientId ?? ''}
            placeholder="Client ID"
            width={60}
            onChange={onSecretChange('clientId')}
            onReset={onSecretReset('clientId')}
            onBlur={touch('clientId')}
          />
        </Field>
        <Field label="Client Secret" required invalid={Boolean(clientSecretError)} error={clientSecretError}>
          <SecretInput
            id="wiz-client-secret"
            data-testid={selectors.config.clientSecret}
            isConfigured={Boolean(secureJsonFields?.clientSecret)}
            value={secureJsonData.clientSecret ?? ''}
            placeholder="Client Secret"
            width={60}
            onChange={onSecretChange('clientSecret')}
            onReset={onSecretReset('clientSecret')}
            onBlur={touch('clientSecret')}
          />
        </Field>
      </FieldSet>

      <FieldSet label="History">
        <Stack direction="row" gap={1} alignItems="flex-end">
          <Field
            label="Backfill start"
            description="Sync history from this date. Wiz keeps 180 days of audit logs; leave empty to start with the first sync."
            invalid={Boolean(backfill.error)}
            error={backfill.error}
          >
            <DatePickerWithInput
              id="wiz-backfill-start"
              data-testid={selectors.config.backfillStart}
              value={toPickerDate(jsonData.backfillStart)}
              maxDate={now}
              closeOnSelect
              placeholder="No backfill"
              width={20}
              onChange={(value) => setJsonData({ backfillStart: value instanceof Date ? toDateString(value) : '' })}
            />
          </Field>
          {jsonData.backfillStart && (
            <Field>
              <Button
                variant="secondary"
                fill="text"
                icon="times"
                data-testid={selectors.config.backfillClear}
                onClick={() => setJsonData({ backfillStart: undefined })}
              >
                No backfill
              </Button>
            </Field>
          )}
        </Stack>
        {backfill.warning && (
          <Alert severity="warning" title="Backfill start is older than Wiz keeps">
            {backfill.warning}
          </Alert>
        )}
      </FieldSet>

      <CollapsableSection label="Advanced" isOpen={advancedOpen} onToggle={setAdvancedOpen}>
        <Field
          label="API URL"
          description="GraphQL endpoint override (Wiz for Gov, proxies). Default: https://api.<data center>.app.wiz.io/graphql"
          invalid={Boolean(errors.apiUrl)}
          error={errors.apiUrl}
        >
          <Input
            id="wiz-api-url"
            data-testid={selectors.config.apiUrl}
            value={jsonData.apiUrl ?? ''}
            placeholder={`https://api.${jsonData.dataCenter || '<data center>'}.app.wiz.io/graphql`}
            width={60}
            onChange={onText('apiUrl')}
          />
        </Field>
        <Field
          label="Auth URL"
          description="OAuth2 token endpoint override."
          invalid={Boolean(errors.authUrl)}
          error={errors.authUrl}
        >
          <Input
            id="wiz-auth-url"
            data-testid={selectors.config.authUrl}
            value={jsonData.authUrl ?? ''}
            placeholder={SETTINGS_DEFAULTS.authUrl}
            width={60}
            onChange={onText('authUrl')}
          />
        </Field>
        <Field
          label="Poll interval"
          description="Time between incremental syncs, as a Go duration (30s, 1m, 5m); at least 10s."
          invalid={Boolean(errors.pollInterval)}
          error={errors.pollInterval}
        >
          <Input
            id="wiz-poll-interval"
            data-testid={selectors.config.pollInterval}
            value={jsonData.pollInterval ?? ''}
            placeholder={SETTINGS_DEFAULTS.pollInterval}
            width={20}
            onChange={onText('pollInterval')}
          />
        </Field>
        <Field
          label="Requests per second"
          description="Ceiling on Wiz API calls per second for this data source; the tenant's limit is shared by all its integrations. Above 0, at most 10."
          invalid={Boolean(errors.requestsPerSecond)}
          error={errors.requestsPerSecond}
        >
          <Input
            id="wiz-requests-per-second"
            data-testid={selectors.config.requestsPerSecond}
            type="number"
            step="any"
            value={jsonData.requestsPerSecond ?? ''}
            placeholder={String(SETTINGS_DEFAULTS.requestsPerSecond)}
            width={20}
            onChange={onNumber('requestsPerSecond')}
          />
        </Field>
        <Field
          label="Page size"
          description="Entries per API page, 1 to 500."
          invalid={Boolean(errors.pageSize)}
          error={errors.pageSize}
        >
          <Input
            id="wiz-page-size"
            data-testid={selectors.config.pageSize}
            type="number"
            value={jsonData.pageSize ?? ''}
            placeholder={String(SETTINGS_DEFAULTS.pageSize)}
            width={20}
            onChange={onNumber('pageSize')}
          />
        </Field>
        <Field
          label="Retention (days)"
          description="Events older than this are pruned from the cache; 0 keeps everything. The cache can keep history Wiz no longer has."
          invalid={Boolean(errors.retentionDays)}
          error={errors.retentionDays}
        >
          <Input
            id="wiz-retention-days"
            data-testid={selectors.config.retentionDays}
            type="number"
            value={jsonData.retentionDays ?? ''}
            placeholder={String(SETTINGS_DEFAULTS.retentionDays)}
            width={20}
            onChange={onNumber('retentionDays')}
          />
        </Field>
      </CollapsableSection>

      {options.uid && <SyncStatusPanel uid={options.uid} />}
    </Stack>
  );
}
