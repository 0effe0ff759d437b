import { AdHocVariableFilter, ScopedVars } from '@grafana/data';
import { TemplateSrv } from '@grafana/runtime';

import { containsTemplateVariable } from './validation';
import { AdHocFilter, LIST_KEYS, WizQuery } from './types';

// Joins the values of a multi-value variable so that they can be split apart again; a control
// character cannot appear in a value typed into a variable.
const SEPARATOR = '\u001f';

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

/**
 * Hands the dashboard's ad-hoc filters to the backend, which applies them (so alert rules and the
 * browser see the same events), after any the query carries itself.
 */
export function withAdHocFilters(query: WizQuery, filters: AdHocVariableFilter[] | undefined): WizQuery {
  if (!filters || filters.length === 0) {
    return query;
  }
  const added: AdHocFilter[] = filters.map(({ key, operator, value }) => ({ key, operator, value }));
  return { ...query, adhocFilters: [...(query.adhocFilters ?? []), ...added] };
}
