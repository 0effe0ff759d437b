import { AdHocVariableFilter, ScopedVars } from '@grafana/data';
import { TemplateSrv } from '@grafana/runtime';

import { ipInRange } from './ip';
import { containsTemplateVariable } from './validation';
import { LIST_KEYS, ListKey, PRINCIPAL_TYPES, WizQuery } from './types';

// Joins the values of a multi-value variable so that they can be split apart again; a control
// character cannot appear in a value typed into a variable.
const SEPARATOR = '\u001f';

/** A filter value no event carries: the query then answers no rows. */
export const NO_MATCH = '(no value matches the dashboard filters)';

function asList(value: string | string[]): string[] {
  return Array.isArray(value) ? value.map(String) : [String(value)];
}

function interpolateList(
  items: string[] | undefined,
  templateSrv: TemplateSrv,
  scopedVars: ScopedVars
): string[] | undefined {
  if (items === undefined) {
    return undefined;
  }
  const out: string[] = [];
  for (const item of items) {
    if (!containsTemplateVariable(item)) {
      out.push(item);
      continue;
    }
    const replaced = templateSrv.replace(item, scopedVars, (value: string | string[]) => asList(value).join(SEPARATOR));
    out.push(...replaced.split(SEPARATOR));
  }
  return Array.from(new Set(out.map((v) => v.trim()).filter((v) => v !== '')));
}

function interpolateScalar(
  value: string | undefined,
  templateSrv: TemplateSrv,
  scopedVars: ScopedVars,
  pick: (values: string[]) => string
): string | undefined {
  if (value === undefined || !containsTemplateVariable(value)) {
    return value;
  }
  const replaced = templateSrv.replace(value, scopedVars, (v: string | string[]) => pick(asList(v))).trim();
  return replaced === '' ? undefined : replaced;
}

/**
 * Replaces dashboard variables in every string and list field of a query, without touching the
 * query it is given. A multi-value variable in a list field becomes one list item per value;
 * `search` takes the values separated by spaces, `groupBy`, `field` and `lookback` the first value, and
 * `principalType` nothing (any type) when the variable holds both types.
 */
export function interpolateQuery(query: WizQuery, templateSrv: TemplateSrv, scopedVars: ScopedVars = {}): WizQuery {
  const out: WizQuery = { ...query };
  for (const key of [...LIST_KEYS, 'fields'] as const) {
    const list = interpolateList(query[key], templateSrv, scopedVars);
    if (list !== undefined) {
      out[key] = list;
    }
  }
  const first = (values: string[]) => values[0] ?? '';
  const scalars = {
    search: interpolateScalar(query.search, templateSrv, scopedVars, (values) => values.join(' ')),
    groupBy: interpolateScalar(query.groupBy, templateSrv, scopedVars, first),
    field: interpolateScalar(query.field, templateSrv, scopedVars, first),
    lookback: interpolateScalar(query.lookback, templateSrv, scopedVars, first),
    principalType: interpolateScalar(query.principalType, templateSrv, scopedVars, (values) => {
      const types = new Set(values);
      return types.size === 1 ? values[0] : '';
    }),
  };
  for (const [key, value] of Object.entries(scalars) as Array<[keyof typeof scalars, string | undefined]>) {
    if (value === undefined) {
      delete out[key];
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** The ad-hoc filter keys, and the query list each maps to. */
export const AD_HOC_KEYS = ['action', 'status', 'principal', 'principalType', 'sourceIp'] as const;
export type AdHocKey = (typeof AD_HOC_KEYS)[number];

const AD_HOC_LISTS: Record<Exclude<AdHocKey, 'principalType'>, ListKey> = {
  action: 'actions',
  status: 'statuses',
  principal: 'principals',
  sourceIp: 'sourceIps',
};

function filterValues(filter: AdHocVariableFilter): string[] | undefined {
  switch (filter.operator) {
    case '=':
      return [filter.value];
    case '=|':
      return filter.values && filter.values.length > 0 ? filter.values : [filter.value];
    default:
      // The query model has no negation or regular expressions: other operators are not offered.
      return undefined;
  }
}

/**
 * ANDs ad-hoc filters into a query: on a key the query already filters, only the values both
 * allow remain (a source IP is kept when it falls in one of the query's ranges); when none
 * remain the query matches nothing.
 */
export function applyAdHocFilters(query: WizQuery, filters: AdHocVariableFilter[] | undefined): WizQuery {
  if (!filters || filters.length === 0) {
    return query;
  }
  const out: WizQuery = { ...query };
  let impossible = false;
  for (const filter of filters) {
    const values = filterValues(filter);
    if (!values) {
      continue;
    }
    if (filter.key === 'principalType') {
      const wanted = new Set(values.filter((v) => (PRINCIPAL_TYPES as readonly string[]).includes(v)));
      if (out.principalType) {
        impossible ||= !wanted.has(out.principalType);
      } else if (wanted.size === 1) {
        out.principalType = Array.from(wanted)[0];
      } else if (wanted.size === 0) {
        impossible = true;
      }
      continue;
    }
    const listKey = AD_HOC_LISTS[filter.key as keyof typeof AD_HOC_LISTS];
    if (!listKey) {
      continue;
    }
    const current = out[listKey] ?? [];
    let next: string[];
    if (current.length === 0) {
      next = values;
    } else if (listKey === 'sourceIps') {
      next = values.filter((ip) => current.some((range) => range === ip || ipInRange(ip, range)));
    } else {
      next = values.filter((v) => current.includes(v));
    }
    impossible ||= next.length === 0;
    out[listKey] = Array.from(new Set(next));
  }
  if (impossible) {
    out.actions = [NO_MATCH];
  }
  return out;
}
