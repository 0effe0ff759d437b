import { ComboboxOption } from '@grafana/ui';
import { getTemplateSrv } from '@grafana/runtime';

import { EVENT_FIELDS, EventField, PrincipalType } from '../types';

export const FIELD_LABELS: Record<EventField, string> = {
  action: 'Action',
  status: 'Status',
  principal: 'Principal',
  principalType: 'Principal type',
  sourceIp: 'Source IP',
  userAgent: 'User agent',
};

export const FIELD_OPTIONS: Array<ComboboxOption<string>> = EVENT_FIELDS.map((field) => ({
  value: field,
  label: FIELD_LABELS[field],
}));

export const PRINCIPAL_TYPE_LABELS: Record<PrincipalType, string> = {
  user: 'User',
  serviceAccount: 'Service account',
};

/** Dashboard variables, offered in every dropdown next to the field's own values. */
export function variableOptions(): Array<ComboboxOption<string>> {
  try {
    return getTemplateSrv()
      .getVariables()
      .map((variable) => ({ value: `$${variable.name}`, label: `$${variable.name}`, group: 'Variables' }));
  } catch {
    return [];
  }
}

export function toOptions(values: readonly string[] | undefined): Array<ComboboxOption<string>> {
  return (values ?? []).map((value) => ({ value, label: value }));
}
