import React from 'react';
import { QueryEditorProps } from '@grafana/data';
import { Combobox, InlineField, InlineFieldRow, Input, Stack } from '@grafana/ui';

import type { DataSource } from '../datasource';
import { WizOptions, WizQuery } from '../types';
import { FilterFields } from './FilterFields';
import { FIELD_OPTIONS, variableOptions } from './options';
import { patchQuery } from './query';
import { selectors } from './selectors';

export type VariableQueryEditorProps = QueryEditorProps<DataSource, WizQuery, WizOptions>;

/**
 * A variable lists the distinct values of one field, narrowed by the usual filters: "all
 * actions" is field action; "all service accounts" is field principal with principal type
 * service account.
 */
export function VariableQueryEditor({ query, onChange, datasource }: VariableQueryEditorProps) {
  const current: WizQuery = { ...query, queryType: 'values', field: query.field || 'action' };
  const update = (patch: Partial<WizQuery>) => onChange(patchQuery(current, patch));

  return (
    <Stack direction="column" gap={0}>
      <InlineFieldRow>
        <InlineField label="Values of" labelWidth={16} tooltip="The field whose distinct values the variable offers">
          <Combobox
            id="wiz-variable-field"
            data-testid={selectors.query.field}
            value={current.field}
            options={[...FIELD_OPTIONS, ...variableOptions()]}
            createCustomValue
            width={24}
            onChange={(option) => update({ field: option.value })}
          />
        </InlineField>
        <InlineField label="Limit" labelWidth={10}>
          <Input
            id="wiz-variable-limit"
            data-testid={selectors.query.limit}
            type="number"
            min={1}
            width={12}
            value={current.limit ?? ''}
            placeholder="all"
            onChange={(e) => {
              const raw = e.currentTarget.value.trim();
              update({ limit: raw === '' ? undefined : Number(raw) });
            }}
          />
        </InlineField>
      </InlineFieldRow>
      <FilterFields query={current} datasource={datasource} onChange={update} showSearch={false} />
    </Stack>
  );
}
