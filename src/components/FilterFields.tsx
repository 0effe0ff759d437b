import React, { useCallback, useState } from 'react';
import { ComboboxOption, InlineField, InlineFieldRow, Input, MultiCombobox, Combobox, TagsInput } from '@grafana/ui';

import type { DataSource } from '../datasource';
import { EVENT_STATUSES, PRINCIPAL_TYPES, WizQuery } from '../types';
import { validateSourceIp } from '../validation';
import { PRINCIPAL_TYPE_LABELS, toOptions, variableOptions } from './options';
import { selectors } from './selectors';

export const ANY_PRINCIPAL_TYPE = 'any';

type FilterPatch = Partial<
  Pick<WizQuery, 'actions' | 'statuses' | 'principals' | 'principalType' | 'sourceIps' | 'search'>
>;

interface Props {
  query: WizQuery;
  datasource: DataSource;
  onChange: (patch: FilterPatch) => void;
  labelWidth?: number;
  showSearch?: boolean;
}

const STATUS_OPTIONS = toOptions(EVENT_STATUSES);

/** The filters every query type shares (PRODUCT.md query model). */
export function FilterFields({ query, datasource, onChange, labelWidth = 16, showSearch = true }: Props) {
  const [ipError, setIpError] = useState<string>();

  const loadValues = useCallback(
    (field: string) =>
      async (input: string): Promise<Array<ComboboxOption<string>>> => {
        let values: string[] = [];
        try {
          values = await datasource.getFieldValues(field, input, 100);
        } catch {
          values = [];
        }
        const variables = variableOptions().filter((o) => o.value.startsWith(input) || input === '');
        return [...toOptions(values), ...variables];
      },
    [datasource]
  );

  const onList = (key: 'actions' | 'statuses' | 'principals') => (options: Array<ComboboxOption<string>>) =>
    onChange({ [key]: options.map((o) => o.value) });

  const onSourceIps = (tags: string[]) => {
    const invalid = tags.map(validateSourceIp).filter((e): e is string => e !== undefined);
    setIpError(invalid.length > 0 ? invalid.join('; ') : undefined);
    onChange({ sourceIps: tags.filter((tag) => validateSourceIp(tag) === undefined) });
  };

  const principalTypeOptions: Array<ComboboxOption<string>> = [
    { value: ANY_PRINCIPAL_TYPE, label: 'Any' },
    ...PRINCIPAL_TYPES.map((t) => ({ value: t, label: PRINCIPAL_TYPE_LABELS[t] })),
    ...variableOptions(),
  ];

  return (
    <>
      <InlineFieldRow>
        <InlineField label="Actions" labelWidth={labelWidth} tooltip="Any of these actions; empty matches all">
          <MultiCombobox
            id="wiz-query-actions"
            data-testid={selectors.query.actions}
            value={toOptions(query.actions)}
            options={loadValues('action')}
            createCustomValue
            placeholder="All actions"
            width="auto"
            minWidth={24}
            maxWidth={60}
            onChange={onList('actions')}
          />
        </InlineField>
        <InlineField label="Statuses" labelWidth={labelWidth} tooltip="Any of these statuses; empty matches all">
          <MultiCombobox
            id="wiz-query-statuses"
            data-testid={selectors.query.statuses}
            value={toOptions(query.statuses)}
            options={[...STATUS_OPTIONS, ...variableOptions()]}
            createCustomValue
            placeholder="All statuses"
            width="auto"
            minWidth={20}
            maxWidth={60}
            onChange={onList('statuses')}
          />
        </InlineField>
      </InlineFieldRow>
      <InlineFieldRow>
        <InlineField
          label="Principals"
          labelWidth={labelWidth}
          tooltip="Users or service accounts, by name or id; empty matches all"
        >
          <MultiCombobox
            id="wiz-query-principals"
            data-testid={selectors.query.principals}
            value={toOptions(query.principals)}
            options={loadValues('principal')}
            createCustomValue
            placeholder="All principals"
            width="auto"
            minWidth={24}
            maxWidth={60}
            onChange={onList('principals')}
          />
        </InlineField>
        <InlineField label="Principal type" labelWidth={labelWidth}>
          <Combobox
            id="wiz-query-principal-type"
            data-testid={selectors.query.principalType}
            value={query.principalType || ANY_PRINCIPAL_TYPE}
            options={principalTypeOptions}
            createCustomValue
            width={22}
            onChange={(option) =>
              onChange({ principalType: option.value === ANY_PRINCIPAL_TYPE ? undefined : option.value })
            }
          />
        </InlineField>
      </InlineFieldRow>
      <InlineFieldRow>
        <InlineField
          label="Source IPs"
          labelWidth={labelWidth}
          tooltip="Addresses or CIDR ranges, such as 203.0.113.7 or 10.0.0.0/8; press Enter after each"
          invalid={Boolean(ipError)}
          error={ipError}
          data-testid={selectors.query.sourceIps}
        >
          <TagsInput
            id="wiz-query-source-ips"
            tags={query.sourceIps ?? []}
            placeholder="IP or CIDR, Enter to add"
            width={40}
            addOnBlur
            autoColors={false}
            invalid={Boolean(ipError)}
            onChange={onSourceIps}
          />
        </InlineField>
        {showSearch && (
          <InlineField
            label="Search"
            labelWidth={labelWidth}
            grow
            tooltip="Free text over id, request id, action, principal, user agent and action parameters"
          >
            <Input
              id="wiz-query-search"
              data-testid={selectors.query.search}
              value={query.search ?? ''}
              placeholder="Free text"
              onChange={(e) => onChange({ search: e.currentTarget.value })}
            />
          </InlineField>
        )}
      </InlineFieldRow>
    </>
  );
}
