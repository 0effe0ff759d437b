import React, { useState } from 'react';
import { ComboboxOption, InlineField, Input, MultiCombobox } from '@grafana/ui';

import { DEFAULT_LOOKBACK, MAX_LOOKBACK_DAYS, validateLookback } from '../lookback';
import { MAX_NEW_TERMS_FIELDS, WizQuery } from '../types';
import { FIELD_OPTIONS, variableOptions } from './options';
import { selectors } from './selectors';

interface Props {
  query: WizQuery;
  onChange: (patch: Pick<WizQuery, 'fields' | 'lookback'>) => void;
  labelWidth: number;
}

const LABELS = new Map(FIELD_OPTIONS.map((o) => [o.value, o.label]));

/** The fields whose values (or tuples) are new, and the window before the range they must be absent from. */
export function NewTermsFields({ query, onChange, labelWidth }: Props) {
  const [fieldsError, setFieldsError] = useState<string>();
  const lookbackError = validateLookback(query.lookback);

  const onFields = (picked: Array<ComboboxOption<string>>) => {
    if (picked.length > MAX_NEW_TERMS_FIELDS) {
      setFieldsError(`A tuple has at most ${MAX_NEW_TERMS_FIELDS} fields: remove one first`);
      return;
    }
    setFieldsError(undefined);
    onChange({ fields: picked.map((o) => o.value) });
  };

  return (
    <>
      <InlineField
        label="Fields"
        labelWidth={labelWidth}
        invalid={Boolean(fieldsError)}
        error={fieldsError}
        tooltip={`One field, or a tuple of up to ${MAX_NEW_TERMS_FIELDS} (such as principal and source IP): each value never seen in the lookback before the range`}
      >
        <MultiCombobox
          id="wiz-query-fields"
          data-testid={selectors.query.fields}
          value={(query.fields ?? []).map((value) => ({ value, label: LABELS.get(value) ?? value }))}
          options={[...FIELD_OPTIONS, ...variableOptions()]}
          placeholder="Choose 1 to 3 fields"
          width="auto"
          minWidth={24}
          maxWidth={60}
          onChange={onFields}
        />
      </InlineField>
      <InlineField
        label="Lookback"
        labelWidth={12}
        invalid={Boolean(lookbackError)}
        error={lookbackError}
        tooltip={`How long before the range a value must be absent to count as new: days (30d) or a Go duration (12h), at most ${MAX_LOOKBACK_DAYS}d`}
      >
        <Input
          id="wiz-query-lookback"
          data-testid={selectors.query.lookback}
          width={12}
          value={query.lookback ?? ''}
          placeholder={DEFAULT_LOOKBACK}
          onChange={(e) => onChange({ lookback: e.currentTarget.value.trim() })}
        />
      </InlineField>
    </>
  );
}
