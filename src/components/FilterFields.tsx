import React, { useCallback, useState } from 'react';
import { SelectableValue } from '@grafana/data';
import {
  Combobox,
  ComboboxOption,
  InlineField,
  InlineFieldRow,
  Input,
  MultiCombobox,
  RadioButtonGroup,
  TagsInput,
} from '@grafana/ui';

import type { DataSource } from '../datasource';
import { EVENT_STATUSES, IncludeListKey, ListKey, NEGATED, PRINCIPAL_TYPES, WizQuery } from '../types';
import { validateSourceIp } from '../validation';
import { PRINCIPAL_TYPE_LABELS, toOptions, variableOptions } from './options';
import { selectors } from './selectors';

export const ANY_PRINCIPAL_TYPE = 'any';

type FilterPatch = Partial<Pick<WizQuery, ListKey | 'principalType' | 'search'>>;

interface Props {
  query: WizQuery;
  datasource: DataSource;
  onChange: (patch: FilterPatch) => void;
  labelWidth?: number;
  showSearch?: boolean;
}

type Mode = 'include' | 'exclude';
const MODES: readonly Mode[] = ['include', 'exclude'];

const MODE_OPTIONS: Array<SelectableValue<Mode>> = [
  { value: 'include', label: 'is', description: 'Events matching any of the values' },
  { value: 'exclude', label: 'is not', description: 'Events matching none of the values' },
];

const STATUS_OPTIONS = toOptions(EVENT_STATUSES);

const INPUT_IDS: Record<ListKey, string> = {
  actions: 'wiz-query-actions',
  statuses: 'wiz-query-statuses',
  principals: 'wiz-query-principals',
  sourceIps: 'wiz-query-source-ips',
  notActions: 'wiz-query-not-actions',
  notStatuses: 'wiz-query-not-statuses',
  notPrincipals: 'wiz-query-not-principals',
  notSourceIps: 'wiz-query-not-source-ips',
};

type Options = Array<ComboboxOption<string>> | ((input: string) => Promise<Array<ComboboxOption<string>>>);

interface ListFilterProps {
  include: IncludeListKey;
  label: string;
  tooltip: string;
  query: WizQuery;
  labelWidth: number;
  onChange: (patch: FilterPatch) => void;
  /** The dropdown's options; source IPs are typed instead. */
  options?: Options;
  noun: string;
}

/**
 * One list filter with its include/exclude choice. The query holds the include list, the exclude
 * list, or (written by hand) both: each non-empty list gets a row. Switching a row moves its values
 * to the other list. While both lists are empty, the last choice is remembered here only.
 */
function ListFilter({ include, label, tooltip, query, labelWidth, onChange, options, noun }: ListFilterProps) {
  const exclude = NEGATED[include];
  const keys: Record<Mode, ListKey> = { include, exclude };
  const values = (mode: Mode) => query[keys[mode]] ?? [];
  const [emptyMode, setEmptyMode] = useState<Mode>(
    values('exclude').length > 0 && values('include').length === 0 ? 'exclude' : 'include'
  );

  const bothEmpty = values('include').length === 0 && values('exclude').length === 0;
  const rows: Mode[] = bothEmpty ? [emptyMode] : MODES.filter((mode) => values(mode).length > 0);

  const switchRow = (from: Mode, to: Mode) => {
    setEmptyMode(to);
    if (from === to || values(from).length === 0) {
      return;
    }
    const moved = Array.from(new Set([...values(to), ...values(from)]));
    onChange({ [keys[from]]: undefined, [keys[to]]: moved });
  };

  return (
    <>
      {rows.map((mode) => (
        <React.Fragment key={mode}>
          <InlineField
            label={label}
            labelWidth={labelWidth}
            tooltip={tooltip}
            data-testid={selectors.query.mode[keys[mode]]}
          >
            <RadioButtonGroup<Mode> options={MODE_OPTIONS} value={mode} onChange={(to) => switchRow(mode, to)} />
          </InlineField>
          <ListInput
            listKey={keys[mode]}
            placeholder={mode === 'include' ? `All ${noun}` : `No ${noun} excluded`}
            values={values(mode)}
            options={options}
            onValues={(next) => {
              setEmptyMode(mode);
              onChange({ [keys[mode]]: next });
            }}
          />
        </React.Fragment>
      ))}
    </>
  );
}

interface SourceIpsFieldProps {
  listKey: ListKey;
  tags: string[];
  onTags: (tags: string[]) => void;
}

/** Addresses and CIDR ranges, each checked as it is entered. */
function SourceIpsField({ listKey, tags, onTags }: SourceIpsFieldProps) {
  const [ipError, setIpError] = useState<string>();
  const onChange = (next: string[]) => {
    const invalid = next.map(validateSourceIp).filter((e): e is string => e !== undefined);
    setIpError(invalid.length > 0 ? invalid.join('; ') : undefined);
    onTags(next.filter((tag) => validateSourceIp(tag) === undefined));
  };
  return (
    <InlineField invalid={Boolean(ipError)} error={ipError} data-testid={selectors.query[listKey]}>
      <TagsInput
        id={INPUT_IDS[listKey]}
        tags={tags}
        placeholder="IP or CIDR, Enter to add"
        width={40}
        addOnBlur
        autoColors={false}
        invalid={Boolean(ipError)}
        onChange={onChange}
      />
    </InlineField>
  );
}

interface ListInputProps {
  listKey: ListKey;
  placeholder: string;
  values: string[];
  options?: Options;
  onValues: (values: string[]) => void;
}

function ListInput({ listKey, placeholder, values, options, onValues }: ListInputProps) {
  if (!options) {
    return <SourceIpsField listKey={listKey} tags={values} onTags={onValues} />;
  }
  return (
    <InlineField>
      <MultiCombobox
        id={INPUT_IDS[listKey]}
        data-testid={selectors.query[listKey]}
        value={toOptions(values)}
        options={options}
        createCustomValue
        placeholder={placeholder}
        width="auto"
        minWidth={24}
        maxWidth={60}
        onChange={(picked) => onValues(picked.map((o) => o.value))}
      />
    </InlineField>
  );
}

/** The filters every query type shares (docs/query-model.md). */
export function FilterFields({ query, datasource, onChange, labelWidth = 16, showSearch = true }: Props) {
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

  const principalTypeOptions: Array<ComboboxOption<string>> = [
    { value: ANY_PRINCIPAL_TYPE, label: 'Any' },
    ...PRINCIPAL_TYPES.map((t) => ({ value: t, label: PRINCIPAL_TYPE_LABELS[t] })),
    ...variableOptions(),
  ];

  const common = { query, labelWidth, onChange };

  return (
    <>
      <InlineFieldRow>
        <ListFilter
          {...common}
          include="actions"
          label="Actions"
          tooltip="Events with any of these actions, or with none of them; empty matches all"
          options={loadValues('action')}
          noun="actions"
        />
        <ListFilter
          {...common}
          include="statuses"
          label="Statuses"
          tooltip="Events with any of these statuses, or with none of them; empty matches all"
          options={[...STATUS_OPTIONS, ...variableOptions()]}
          noun="statuses"
        />
      </InlineFieldRow>
      <InlineFieldRow>
        <ListFilter
          {...common}
          include="principals"
          label="Principals"
          tooltip="Users or service accounts by name or id: any of them, or none of them; empty matches all"
          options={loadValues('principal')}
          noun="principals"
        />
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
        <ListFilter
          {...common}
          include="sourceIps"
          label="Source IPs"
          tooltip="Addresses or CIDR ranges, such as 203.0.113.7 or 10.0.0.0/8, press Enter after each: any of them, or none of them (events without a source IP are never excluded); empty matches all"
          noun="source IPs"
        />
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
