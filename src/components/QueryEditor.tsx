import React from 'react';
import { QueryEditorProps, SelectableValue } from '@grafana/data';
import { Combobox, InlineField, InlineFieldRow, RadioButtonGroup, Stack } from '@grafana/ui';

import { DataSource } from '../datasource';
import { QueryType, WizOptions, WizQuery } from '../types';
import { FilterFields } from './FilterFields';
import { LimitField } from './LimitField';
import { NewTermsFields } from './NewTermsFields';
import { FIELD_OPTIONS, variableOptions } from './options';
import { patchQuery, withQueryType } from './query';
import { selectors } from './selectors';
import { useDebouncedRun } from './useDebouncedRun';

export type WizQueryEditorProps = QueryEditorProps<DataSource, WizQuery, WizOptions>;

const QUERY_TYPE_OPTIONS: Array<SelectableValue<QueryType>> = [
  { value: 'logs', label: 'Logs', description: 'Events, newest first (Explore, logs panel)' },
  { value: 'table', label: 'Table', description: 'A row per event with every column' },
  { value: 'timeseries', label: 'Time series', description: 'Event counts per interval' },
  { value: 'top', label: 'Top', description: 'The most frequent values of a field' },
  { value: 'values', label: 'Values', description: 'Distinct values of a field' },
  {
    value: 'newTerms',
    label: 'New terms',
    description:
      'Values, or tuples such as principal and source IP, seen in the range but never in the lookback before it',
  },
];

const NONE = '';
const LABEL_WIDTH = 16;

export function QueryEditor({ query, onChange, onRunQuery, datasource }: WizQueryEditorProps) {
  const queryType = query.queryType ?? 'logs';
  const scheduleRun = useDebouncedRun(onRunQuery);

  const change = (next: WizQuery) => {
    onChange(next);
    scheduleRun();
  };
  const update = (patch: Partial<WizQuery>) => change(patchQuery(query, patch));

  return (
    <Stack direction="column" gap={0}>
      <InlineFieldRow>
        <InlineField label="Query type" labelWidth={LABEL_WIDTH} data-testid={selectors.query.queryType}>
          <RadioButtonGroup<QueryType>
            options={QUERY_TYPE_OPTIONS}
            value={queryType}
            onChange={(value) => change(withQueryType(query, value))}
          />
        </InlineField>
      </InlineFieldRow>
      <FilterFields query={query} datasource={datasource} onChange={update} labelWidth={LABEL_WIDTH} />
      <InlineFieldRow>
        {(queryType === 'timeseries' || queryType === 'top') && (
          <InlineField
            label="Group by"
            labelWidth={LABEL_WIDTH}
            tooltip={
              queryType === 'timeseries' ? 'One series per value; none for a single series' : 'The field to rank'
            }
          >
            <Combobox
              id="wiz-query-group-by"
              data-testid={selectors.query.groupBy}
              value={query.groupBy ?? NONE}
              options={[
                ...(queryType === 'timeseries' ? [{ value: NONE, label: 'None (one series)' }] : []),
                ...FIELD_OPTIONS,
                ...variableOptions(),
              ]}
              createCustomValue
              width={24}
              onChange={(option) => update({ groupBy: option.value || undefined })}
            />
          </InlineField>
        )}
        {queryType === 'values' && (
          <InlineField label="Field" labelWidth={LABEL_WIDTH}>
            <Combobox
              id="wiz-query-field"
              data-testid={selectors.query.field}
              value={query.field ?? 'action'}
              options={[...FIELD_OPTIONS, ...variableOptions()]}
              createCustomValue
              width={24}
              onChange={(option) => update({ field: option.value })}
            />
          </InlineField>
        )}
        {queryType === 'newTerms' && <NewTermsFields query={query} onChange={update} labelWidth={LABEL_WIDTH} />}
        <LimitField
          id="wiz-query-limit"
          queryType={queryType}
          limit={query.limit}
          labelWidth={LABEL_WIDTH}
          onChange={(limit) => update({ limit })}
        />
      </InlineFieldRow>
    </Stack>
  );
}
