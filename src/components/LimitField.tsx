import React from 'react';
import { InlineField, Input } from '@grafana/ui';

import { LIMITS, QueryType } from '../types';
import { selectors } from './selectors';

/** Why a limit is refused for a query type, or undefined when the backend accepts it (0 means the default). */
export function limitError(limit: number | undefined, queryType: QueryType): string | undefined {
  if (limit === undefined || limit === 0) {
    return undefined;
  }
  const { max } = LIMITS[queryType];
  return Number.isInteger(limit) && limit >= 1 && limit <= max
    ? undefined
    : `Limit must be a whole number from 1 to ${max}`;
}

interface Props {
  id: string;
  queryType: QueryType;
  limit: number | undefined;
  onChange: (limit: number | undefined) => void;
  labelWidth: number;
}

/** The `limit` of a query: its placeholder is the default, its bounds those of the limits table. */
export function LimitField({ id, queryType, limit, onChange, labelWidth }: Props) {
  const { default: byDefault, max } = LIMITS[queryType];
  const error = limitError(limit, queryType);
  const series = queryType === 'timeseries';
  return (
    <InlineField
      label={series ? 'Series limit' : 'Limit'}
      labelWidth={labelWidth}
      invalid={Boolean(error)}
      error={error}
      tooltip={
        series ? `Keeps the biggest series, at most ${max}; empty keeps all` : `${byDefault} when empty, at most ${max}`
      }
    >
      <Input
        id={id}
        data-testid={selectors.query.limit}
        type="number"
        min={1}
        max={max}
        width={14}
        value={limit ?? ''}
        placeholder={byDefault > 0 ? String(byDefault) : 'all'}
        onChange={(e) => {
          const raw = e.currentTarget.value.trim();
          onChange(raw === '' ? undefined : Number(raw));
        }}
      />
    </InlineField>
  );
}
