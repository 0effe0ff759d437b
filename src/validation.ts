import { WizOptions } from './types';

/**
 * Client-side checks that mirror the backend's settings validation, so that a mistake shows
 * next to its field before "Save & test". The backend stays the authority.
 */

const TEMPLATE_VARIABLE = /\$(?:\w+|\{[^}]+\})|\[\[[^\]]+\]\]/;

/** Whether a value holds a dashboard variable reference ($var, ${var}, ${var:fmt}, [[var]]). */
export function containsTemplateVariable(value: string): boolean {
  return TEMPLATE_VARIABLE.test(value);
}

export const DATA_CENTER_PATTERN = /^[a-z]{2,}[0-9]+$/;
const DAY_MS = 24 * 60 * 60 * 1000;
export const MAX_LOOKBACK_DAYS = 180;

export function validateDataCenter(dataCenter: string | undefined, apiUrl: string | undefined): string | undefined {
  const dc = (dataCenter ?? '').trim();
  if (dc === '') {
    return (apiUrl ?? '').trim() === ''
      ? 'Data center is required (the short code from Tenant Info in the Wiz portal, such as us1, us17 or eu2), unless an API URL is set'
      : undefined;
  }
  if (!DATA_CENTER_PATTERN.test(dc)) {
    return `"${dc}" is not a Wiz data center: use the short code from Tenant Info in the Wiz portal, such as us1, us17 or eu2`;
  }
  return undefined;
}

// The URL parser writes an IPv4-mapped address in hex: [::ffff:127.0.0.1] becomes [::ffff:7f00:1].
function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return (
    host === 'localhost' ||
    host === '::1' ||
    /^127\.\d+\.\d+\.\d+$/.test(host) ||
    /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(host)
  );
}

/**
 * https URLs, or http ones to a loopback host only: tokens and audit data never travel in clear text.
 * A copy of the backend's rule (wiz.CheckURL) for instant feedback; both run the cases of
 * pkg/settings/testdata/url_rule.json.
 */
export function validateUrl(raw: string | undefined, example: string): string | undefined {
  const value = (raw ?? '').trim();
  if (value === '') {
    return undefined;
  }
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || url.hostname === '') {
    return `"${value}" is not an absolute URL such as ${example}`;
  }
  if (url.username !== '' || url.password !== '') {
    return 'The URL must not carry credentials';
  }
  if (url.protocol === 'https:') {
    return undefined;
  }
  if (url.protocol === 'http:') {
    return isLoopbackHost(url.hostname)
      ? undefined
      : `"${value}" uses plain http to a non-loopback host: use https (http is only allowed for localhost)`;
  }
  return `"${value}" must start with https://`;
}

/** Parses an RFC 3339 date (2026-06-01) or date-time (2026-06-01T00:00:00Z). */
export function parseBackfillStart(value: string): Date | undefined {
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/;
  const dateTime = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
  if (!dateOnly.test(value) && !dateTime.test(value)) {
    return undefined;
  }
  const d = new Date(dateOnly.test(value) ? `${value}T00:00:00Z` : value);
  return isNaN(d.getTime()) ? undefined : d;
}

export interface Check {
  error?: string;
  warning?: string;
}

export function checkBackfillStart(raw: string | undefined, now: Date): Check {
  const value = (raw ?? '').trim();
  if (value === '') {
    return {};
  }
  const date = parseBackfillStart(value);
  if (!date) {
    return { error: `"${value}" is not a date: use RFC 3339, such as 2026-06-01 or 2026-06-01T00:00:00Z` };
  }
  if (date.getTime() > now.getTime()) {
    return { error: `${value} is in the future: choose a date in the last ${MAX_LOOKBACK_DAYS} days` };
  }
  if (date.getTime() < now.getTime() - MAX_LOOKBACK_DAYS * DAY_MS) {
    return {
      warning: `Wiz keeps ${MAX_LOOKBACK_DAYS} days of audit logs: the backfill will start ${MAX_LOOKBACK_DAYS} days ago instead`,
    };
  }
  return {};
}

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60 * 1000,
  h: 60 * 60 * 1000,
};

/** Parses a Go duration (`30s`, `1m30s`, `1.5h`) into milliseconds. */
export function parseGoDuration(value: string): number | undefined {
  const s = value.trim();
  if (s === '0') {
    return 0;
  }
  const match = /^([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(s);
  if (!match) {
    return undefined;
  }
  let total = 0;
  for (const part of match[2].matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += parseFloat(part[1]) * DURATION_UNITS_MS[part[2]];
  }
  return match[1] === '-' ? -total : total;
}

export function validatePollInterval(raw: string | undefined): string | undefined {
  const value = (raw ?? '').trim();
  if (value === '') {
    return undefined;
  }
  const ms = parseGoDuration(value);
  if (ms === undefined) {
    return `"${value}" is not a duration: use a Go duration such as 30s, 1m or 5m`;
  }
  return ms < 10_000 ? `${value} is too short: at least 10s` : undefined;
}

function isSet(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '';
}

export function validateRequestsPerSecond(value: unknown): string | undefined {
  if (!isSet(value)) {
    return undefined;
  }
  const n = Number(value);
  return Number.isFinite(n) && n > 0 && n <= 10 ? undefined : 'Must be a number above 0 and at most 10';
}

export function validatePageSize(value: unknown): string | undefined {
  if (!isSet(value)) {
    return undefined;
  }
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 500 ? undefined : 'Must be a whole number from 1 to 500';
}

export function validateRetentionDays(value: unknown): string | undefined {
  if (!isSet(value)) {
    return undefined;
  }
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 ? undefined : 'Must be a whole number of days, 0 or more (0 keeps everything)';
}

export type SettingsErrors = Partial<Record<keyof WizOptions, string>>;

/** Every problem of the plain settings, keyed by their jsonData key. */
export function validateSettings(jsonData: WizOptions, now: Date): SettingsErrors {
  const errors: SettingsErrors = {
    dataCenter: validateDataCenter(jsonData.dataCenter, jsonData.apiUrl),
    apiUrl: validateUrl(jsonData.apiUrl, 'https://api.us17.app.wiz.io/graphql'),
    authUrl: validateUrl(jsonData.authUrl, 'https://auth.app.wiz.io/oauth/token'),
    backfillStart: checkBackfillStart(jsonData.backfillStart, now).error,
    pollInterval: validatePollInterval(jsonData.pollInterval),
    requestsPerSecond: validateRequestsPerSecond(jsonData.requestsPerSecond),
    pageSize: validatePageSize(jsonData.pageSize),
    retentionDays: validateRetentionDays(jsonData.retentionDays),
  };
  for (const key of Object.keys(errors) as Array<keyof SettingsErrors>) {
    if (errors[key] === undefined) {
      delete errors[key];
    }
  }
  return errors;
}

/** A source IP filter value: an address, a CIDR range, or a template variable. */
export function validateSourceIp(value: string): string | undefined {
  const v = value.trim();
  if (containsTemplateVariable(v) || isIPOrCIDR(v)) {
    return undefined;
  }
  return `"${v}" is not an IP address or CIDR range (such as 203.0.113.7 or 10.0.0.0/8)`;
}

// IP address and CIDR syntax, for instant feedback in the editor only: the backend (Go's netip)
// decides what matches, and rejects what it cannot read with an error naming the filter.

const IPV4_PART = /^(0|[1-9][0-9]{0,2})$/;

function parseIPv4(s: string): number[] | undefined {
  const parts = s.split('.');
  if (parts.length !== 4 || !parts.every((p) => IPV4_PART.test(p))) {
    return undefined;
  }
  const bytes = parts.map(Number);
  return bytes.every((b) => b <= 255) ? bytes : undefined;
}

function parseIPv6(s: string): number[] | undefined {
  const halves = s.split('::');
  if (halves.length > 2) {
    return undefined;
  }
  const groups = (half: string): number[] | undefined => {
    if (half === '') {
      return [];
    }
    const out: number[] = [];
    const pieces = half.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4(piece);
        if (!v4) {
          return undefined;
        }
        out.push(v4[0], v4[1], v4[2], v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        const n = parseInt(piece, 16);
        out.push(n >> 8, n & 0xff);
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) {
    return undefined;
  }
  if (halves.length === 1) {
    return head.length === 16 ? head : undefined;
  }
  const missing = 16 - head.length - tail.length;
  return missing >= 2 ? [...head, ...new Array(missing).fill(0), ...tail] : undefined;
}

/** The address's bytes (4 for IPv4, 16 for IPv6), or undefined when it is not an IP address. */
function parseIP(s: string): number[] | undefined {
  return s.includes(':') ? parseIPv6(s) : parseIPv4(s);
}

interface Cidr {
  bytes: number[];
  bits: number;
}

function parseCIDR(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) {
    return undefined;
  }
  const bytes = parseIP(s.slice(0, slash));
  const prefix = s.slice(slash + 1);
  if (!bytes || !/^(0|[1-9][0-9]{0,2})$/.test(prefix)) {
    return undefined;
  }
  const bits = Number(prefix);
  return bits <= bytes.length * 8 ? { bytes, bits } : undefined;
}

export function isIPOrCIDR(s: string): boolean {
  return parseIP(s) !== undefined || parseCIDR(s) !== undefined;
}
