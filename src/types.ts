import { DataSourceJsonData } from '@grafana/data';
import { DataQuery } from '@grafana/schema';

import limits from '../pkg/query/limits.json';

/** What a query returns; see the product contract's query model. */
export type QueryType = 'logs' | 'table' | 'timeseries' | 'top' | 'values' | 'newTerms';

export const QUERY_TYPES: readonly QueryType[] = ['logs', 'table', 'timeseries', 'top', 'values', 'newTerms'];

/** The audit log fields that `groupBy` (timeseries, top), `field` (values) and `fields` (newTerms) accept. */
export type EventField = 'action' | 'status' | 'principal' | 'principalType' | 'sourceIp' | 'userAgent';

export const EVENT_FIELDS: readonly EventField[] = [
  'action',
  'status',
  'principal',
  'principalType',
  'sourceIp',
  'userAgent',
];

export type EventStatus = 'SUCCESS' | 'FAILED' | 'ACCESS_DENIED';

export const EVENT_STATUSES: readonly EventStatus[] = ['SUCCESS', 'FAILED', 'ACCESS_DENIED'];

export type PrincipalType = 'user' | 'serviceAccount';

export const PRINCIPAL_TYPES: readonly PrincipalType[] = ['user', 'serviceAccount'];

/**
 * The query JSON the backend reads. Filters are ANDed; a list matches any of its values; an
 * empty or absent filter matches everything. String and list fields may hold template
 * variables until `applyTemplateVariables` replaces them, hence `string` next to the enums.
 */
export interface WizQuery extends DataQuery {
  queryType?: QueryType;
  actions?: string[];
  statuses?: string[];
  principals?: string[];
  principalType?: PrincipalType | string;
  sourceIps?: string[];
  search?: string;
  notActions?: string[];
  notStatuses?: string[];
  notPrincipals?: string[];
  notSourceIps?: string[];
  groupBy?: EventField | string;
  field?: EventField | string;
  /** Grafana's ad-hoc filters, applied by the backend and ANDed with the rest. */
  adhocFilters?: AdHocFilter[];
  /** newTerms: one field, or a tuple of up to MAX_NEW_TERMS_FIELDS. */
  fields?: Array<EventField | string>;
  /** newTerms: how far before the range a value must not have been seen (Go duration or `Nd`). */
  lookback?: string;
  limit?: number;
}

/** An ad-hoc filter as the backend takes it: keys are the event fields; regexes are RE2, anchored. */
export interface AdHocFilter {
  key: EventField | string;
  operator: AdHocOperator | string;
  value: string;
}

export type AdHocOperator = '=' | '!=' | '=~' | '!~';

export const MAX_NEW_TERMS_FIELDS = 3;
export const DEFAULT_NEW_TERMS_FIELDS: readonly EventField[] = ['principal', 'sourceIp'];

export interface Limit {
  /** What the backend applies when `limit` is unset or 0; 0 here means no limit (all). */
  default: number;
  max: number;
}

/** `limit` per query type: the backend embeds the same file, so the editors cannot drift from it. */
export const LIMITS: Record<QueryType, Limit> = limits;

/** The list filters, each with a negated twin that excludes events matching any of its values. */
export type IncludeListKey = 'actions' | 'statuses' | 'principals' | 'sourceIps';
export type ExcludeListKey = 'notActions' | 'notStatuses' | 'notPrincipals' | 'notSourceIps';
export type ListKey = IncludeListKey | ExcludeListKey;

export const NEGATED: Record<IncludeListKey, ExcludeListKey> = {
  actions: 'notActions',
  statuses: 'notStatuses',
  principals: 'notPrincipals',
  sourceIps: 'notSourceIps',
};

export const LIST_KEYS: readonly ListKey[] = [...(Object.keys(NEGATED) as IncludeListKey[]), ...Object.values(NEGATED)];

export const DEFAULT_QUERY: Partial<WizQuery> = { queryType: 'logs' };

/** jsonData of a data source: every key optional, see the README's Settings table. */
export interface WizOptions extends DataSourceJsonData {
  dataCenter?: string;
  apiUrl?: string;
  authUrl?: string;
  backfillStart?: string;
  pollInterval?: string;
  requestsPerSecond?: number;
  pageSize?: number;
  retentionDays?: number;
}

/** The secureJsonData keys; never sent back to the browser once saved. */
export type SecureKey = 'clientId' | 'clientSecret';

export type WizSecureJsonData = Partial<Record<SecureKey, string>>;

export const SETTINGS_DEFAULTS = {
  authUrl: 'https://auth.app.wiz.io/oauth/token',
  pollInterval: '1m',
  requestsPerSecond: 1,
  pageSize: 500,
  retentionDays: 400,
} as const;

export type SyncState = 'idle' | 'syncing' | 'backfilling' | 'error';

/** `GET sync/status`. */
export interface SyncStatus {
  state: SyncState;
  events: number;
  oldest?: string | null;
  newest?: string | null;
  syncedUpTo?: string | null;
  lastSyncAt?: string | null;
  lastError?: string | null;
  backfill?: { from: string; to: string; done: number } | null;
  nextSyncAt?: string | null;
  cacheFile?: string | null;
  cacheBytes?: number;
  /** Where the cache lives: the embedded SQLite file, or the PostgreSQL database shared by Grafana's replicas. */
  backend?: 'sqlite' | 'postgres';
  /** Whether this Grafana replica syncs the data source (leader) or serves what another one syncs. */
  role?: 'leader' | 'follower';
  /** Host name and process id of the replica that syncs, or null when none does. */
  leader?: string | null;
}
