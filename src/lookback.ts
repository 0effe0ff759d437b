import { containsTemplateVariable, parseGoDuration } from './validation';

export const DEFAULT_LOOKBACK = '30d';
export const MAX_LOOKBACK_DAYS = 365;

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Checks a newTerms lookback as the backend does: a Go duration (`12h`) or a number of days
 * (`30d`), longer than zero and at most 365 days. Empty means the default.
 */
export function validateLookback(raw: string | undefined): string | undefined {
  const value = (raw ?? '').trim();
  if (value === '' || containsTemplateVariable(value)) {
    return undefined;
  }
  const days = /^(\d+)d$/.exec(value);
  const ms = days ? Number(days[1]) * DAY_MS : parseGoDuration(value);
  if (ms === undefined) {
    return `"${value}" is not a lookback: use days such as 30d, or a Go duration such as 12h`;
  }
  if (ms <= 0) {
    return 'The lookback must be longer than zero';
  }
  return ms > MAX_LOOKBACK_DAYS * DAY_MS ? `${value} is too long: at most ${MAX_LOOKBACK_DAYS}d` : undefined;
}
