import React from 'react';
import { QueryEditorProps } from '@grafana/data';
import { Combobox, InlineField, InlineFieldRow, Stack } from '@grafana/ui';

import type { DataSource } from '../datasource';
import { WizOptions, WizQuery } from '../types';
import { FilterFields } from './FilterFields';
import { LimitField } from './LimitField';
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
        <LimitField
          id="wiz-variable-limit"
          queryType="values"
          limit={current.limit}
          labelWidth={10}
          onChange={(limit) => update({ limit })}
        />
      </InlineFieldRow>
      <FilterFields query={current} datasource={datasource} onChange={update} showSearch={false} />
    </Stack>
  );
}
