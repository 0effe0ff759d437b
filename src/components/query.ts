import { DEFAULT_NEW_TERMS_FIELDS, EventField, QueryType, WizQuery } from '../types';

/** Applies a patch to a query, dropping keys that became empty so the JSON stays minimal. */
export function patchQuery(query: WizQuery, patch: Partial<WizQuery>): WizQuery {
  const next: WizQuery = { ...query, ...patch };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) {
      delete next[key as keyof WizQuery];
    }
  }
  return next;
}

/** Switches the query type, keeping the filters and choosing sensible defaults for the new type. */
export function withQueryType(query: WizQuery, queryType: QueryType): WizQuery {
  const { groupBy, field, fields, lookback, limit, ...rest } = query;
  const next: WizQuery = { ...rest, queryType };
  // limit means rows for logs/table, values for top/values: a value chosen for one type rarely suits another.
  if (limit !== undefined && queryType === (query.queryType ?? 'logs')) {
    next.limit = limit;
  }
  switch (queryType) {
    case 'timeseries':
      if (groupBy) {
        next.groupBy = groupBy;
      }
      break;
    case 'top':
      next.groupBy = groupBy || ('action' satisfies EventField);
      break;
    case 'values':
      next.field = field || groupBy || ('action' satisfies EventField);
      break;
    case 'newTerms':
      next.fields = fields && fields.length > 0 ? fields : [...DEFAULT_NEW_TERMS_FIELDS];
      if (lookback) {
        next.lookback = lookback;
      }
      break;
  }
  return next;
}
