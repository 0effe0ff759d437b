import React from 'react';
import { readFileSync } from 'fs';
import { join } from 'path';
import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';

import { QueryEditor } from './QueryEditor';
import { VariableQueryEditor } from './VariableQueryEditor';
import { selectors } from './selectors';
import type { DataSource } from '../datasource';
import { QUERY_TYPES, WizQuery } from '../types';
import { deepFreeze } from '../__fixtures__/testUtils';

jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getTemplateSrv: () => ({ getVariables: () => [{ name: 'who' }] }),
}));

// The dropdowns are virtualised: give elements a size so that options render in jsdom.
beforeAll(() => {
  jest.spyOn(Element.prototype, 'getBoundingClientRect').mockReturnValue({
    width: 400,
    height: 400,
    top: 0,
    left: 0,
    bottom: 400,
    right: 400,
    x: 0,
    y: 0,
    toJSON: () => ({}),
  });
  for (const prop of ['offsetHeight', 'offsetWidth', 'clientHeight', 'clientWidth'] as const) {
    Object.defineProperty(HTMLElement.prototype, prop, { configurable: true, get: () => 400 });
  }
});

const getFieldValues = jest.fn(async (field: string, prefix: string) =>
  (field === 'action' ? ['Login', 'Logout', 'CreateUser'] : ['alice', 'MetronLabs']).filter((v) => v.startsWith(prefix))
);
const datasource = { getFieldValues } as unknown as DataSource;

function setup(query: WizQuery, editor: 'query' | 'variable' = 'query') {
  const onChange = jest.fn();
  const onRunQuery = jest.fn();
  const props = deepFreeze({ query, onChange, onRunQuery, datasource });
  const Editor = editor === 'query' ? QueryEditor : VariableQueryEditor;
  render(<Editor {...(props as React.ComponentProps<typeof QueryEditor>)} />);
  return { onChange, onRunQuery };
}

function comboboxInput(testId: string): HTMLElement {
  const el = screen.getByTestId(testId);
  return el.tagName === 'INPUT' ? el : within(el).getByRole('combobox');
}

/** Opens a dropdown, optionally types, and clicks the option labelled `label`. */
async function pick(testId: string, label: string, typed?: string) {
  const input = comboboxInput(testId);
  fireEvent.click(input);
  if (typed !== undefined) {
    fireEvent.change(input, { target: { value: typed } });
  }
  const options = await screen.findAllByRole('option');
  const option = await waitFor(() => {
    const found = screen
      .getAllByRole('option')
      .find((o) => o.textContent === label || o.id === `combobox-option-${label}`);
    if (!found) {
      throw new Error(`no option ${label} among ${options.map((o) => o.textContent).join(', ')}`);
    }
    return found;
  });
  fireEvent.click(option);
}

/** Types a value that is not among the options and picks the "custom value" entry. */
async function typeCustom(testId: string, value: string) {
  const input = comboboxInput(testId);
  fireEvent.click(input);
  fireEvent.change(input, { target: { value } });
  const option = await waitFor(() => {
    const found = screen.getAllByRole('option').find((o) => /custom value/i.test(o.textContent ?? ''));
    if (!found) {
      throw new Error('no custom value option');
    }
    return found;
  });
  fireEvent.click(option);
}

describe('QueryEditor', () => {
  beforeEach(() => getFieldValues.mockClear());

  it.each([
    ['Logs', { refId: 'A', queryType: 'logs' }],
    ['Table', { refId: 'A', queryType: 'table' }],
    ['Time series', { refId: 'A', queryType: 'timeseries' }],
    ['Top', { refId: 'A', queryType: 'top', groupBy: 'action' }],
    ['Values', { refId: 'A', queryType: 'values', field: 'action' }],
    ['New terms', { refId: 'A', queryType: 'newTerms', fields: ['principal', 'sourceIp'] }],
  ])('switches to %s with its defaults', (label, expected) => {
    const { onChange } = setup({ refId: 'A', queryType: label === 'Logs' ? 'table' : 'logs', limit: 20 });
    fireEvent.click(within(screen.getByTestId(selectors.query.queryType)).getByLabelText(label));
    expect(onChange).toHaveBeenLastCalledWith(expected);
  });

  it('keeps filters and the group-by when switching between counting types', () => {
    const { onChange } = setup({ refId: 'A', queryType: 'timeseries', groupBy: 'status', actions: ['Login'] });
    fireEvent.click(screen.getByLabelText('Top'));
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'top', groupBy: 'status', actions: ['Login'] });
  });

  it('picks statuses', async () => {
    const { onChange } = setup({ refId: 'A', queryType: 'logs' });
    await pick(selectors.query.statuses, 'FAILED');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'logs', statuses: ['FAILED'] });
  });

  it('offers actions from the values endpoint as the user types', async () => {
    const { onChange } = setup({ refId: 'A', queryType: 'logs', actions: ['CreateUser'] });
    await pick(selectors.query.actions, 'Logout', 'Logo');
    expect(getFieldValues).toHaveBeenCalledWith('action', 'Logo', 100);
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'logs', actions: ['CreateUser', 'Logout'] });
  });

  it('accepts custom principals and template variables', async () => {
    const { onChange } = setup({ refId: 'A' });
    await typeCustom(selectors.query.principals, 'bob@example.com');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', principals: ['bob@example.com'] });
    await pick(selectors.query.principals, '$who', '$');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', principals: ['$who'] });
  });

  it('sets and clears the principal type', async () => {
    const { onChange } = setup({ refId: 'A', principalType: 'user' });
    await pick(selectors.query.principalType, 'Service account');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', principalType: 'serviceAccount' });
    await pick(selectors.query.principalType, 'Any');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A' });
  });

  it('takes source IPs and CIDR ranges, refusing anything else', () => {
    const { onChange } = setup({ refId: 'A', sourceIps: ['203.0.113.7'] });
    const input = within(screen.getByTestId(selectors.query.sourceIps)).getByRole('textbox');
    fireEvent.change(input, { target: { value: '10.0.0.0/8' } });
    fireEvent.keyDown(input, { key: 'Enter' });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', sourceIps: ['203.0.113.7', '10.0.0.0/8'] });

    fireEvent.change(input, { target: { value: 'not-an-ip' } });
    fireEvent.keyDown(input, { key: 'Enter' });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', sourceIps: ['203.0.113.7'] });
    expect(screen.getByText(/"not-an-ip" is not an IP address or CIDR range/)).toBeInTheDocument();

    fireEvent.change(input, { target: { value: '$ips' } });
    fireEvent.keyDown(input, { key: 'Enter' });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', sourceIps: ['203.0.113.7', '$ips'] });
  });

  it('excludes statuses once the filter is switched to "is not"', async () => {
    const { onChange } = setup({ refId: 'A', queryType: 'logs' });
    expect(screen.queryByTestId(selectors.query.notStatuses)).not.toBeInTheDocument();
    fireEvent.click(within(screen.getByTestId(selectors.query.mode.statuses)).getByLabelText('is not'));
    expect(onChange).not.toHaveBeenCalled();
    expect(screen.queryByTestId(selectors.query.statuses)).not.toBeInTheDocument();
    await pick(selectors.query.notStatuses, 'SUCCESS');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'logs', notStatuses: ['SUCCESS'] });
  });

  it('moves the values to the other list when a filter switches between "is" and "is not"', () => {
    const { onChange } = setup({ refId: 'A', actions: ['Login', 'TokenRefresh'] });
    fireEvent.click(within(screen.getByTestId(selectors.query.mode.actions)).getByLabelText('is not'));
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', notActions: ['Login', 'TokenRefresh'] });
  });

  it('shows both rows of a query that includes and excludes, and merges them on a switch', () => {
    const { onChange } = setup({ refId: 'A', principals: ['alice'], notPrincipals: ['terraform-ci', 'alice'] });
    expect(screen.getByTestId(selectors.query.principals)).toBeInTheDocument();
    expect(screen.getByTestId(selectors.query.notPrincipals)).toBeInTheDocument();
    fireEvent.click(within(screen.getByTestId(selectors.query.mode.notPrincipals)).getByLabelText('is'));
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', principals: ['alice', 'terraform-ci'] });
  });

  it('excludes source IP ranges, refusing anything that is not an address or range', () => {
    const { onChange } = setup({ refId: 'A', notSourceIps: ['10.0.0.0/8'] });
    expect(screen.queryByTestId(selectors.query.sourceIps)).not.toBeInTheDocument();
    const input = within(screen.getByTestId(selectors.query.notSourceIps)).getByRole('textbox');
    fireEvent.change(input, { target: { value: '2001:db8::/32' } });
    fireEvent.keyDown(input, { key: 'Enter' });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', notSourceIps: ['10.0.0.0/8', '2001:db8::/32'] });
    fireEvent.change(input, { target: { value: 'office' } });
    fireEvent.keyDown(input, { key: 'Enter' });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', notSourceIps: ['10.0.0.0/8'] });
    expect(screen.getByText(/"office" is not an IP address or CIDR range/)).toBeInTheDocument();
  });

  it('keeps an emptied exclude list as "is not"', () => {
    const props = { onChange: jest.fn(), onRunQuery: jest.fn(), datasource };
    const { rerender } = render(<QueryEditor {...props} query={deepFreeze({ refId: 'A', notActions: ['Login'] })} />);
    rerender(<QueryEditor {...props} query={deepFreeze({ refId: 'A' })} />);
    expect(screen.getByTestId(selectors.query.notActions)).toBeInTheDocument();
    expect(screen.queryByTestId(selectors.query.actions)).not.toBeInTheDocument();
  });

  it('edits the search text', () => {
    const { onChange } = setup({ refId: 'A', search: 'old' });
    fireEvent.change(screen.getByTestId(selectors.query.search), { target: { value: 'token rotated' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', search: 'token rotated' });
    fireEvent.change(screen.getByTestId(selectors.query.search), { target: { value: '' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A' });
  });

  it('groups a time series by a field, or not at all', async () => {
    const { onChange } = setup({ refId: 'A', queryType: 'timeseries' });
    await pick(selectors.query.groupBy, 'Status');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'timeseries', groupBy: 'status' });
  });

  it('drops the group-by for a single series', async () => {
    const { onChange } = setup({ refId: 'A', queryType: 'timeseries', groupBy: 'status' });
    await pick(selectors.query.groupBy, 'None (one series)');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'timeseries' });
  });

  it('chooses the field of a values query', async () => {
    const { onChange } = setup({ refId: 'A', queryType: 'values', field: 'action' });
    expect(screen.queryByTestId(selectors.query.groupBy)).not.toBeInTheDocument();
    await pick(selectors.query.field, 'User agent');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'values', field: 'userAgent' });
  });

  it('sets the limit and flags one out of range', () => {
    const { onChange } = setup({ refId: 'A', queryType: 'top', groupBy: 'action', limit: 5 });
    const limit = screen.getByTestId(selectors.query.limit);
    expect(limit).toHaveAttribute('placeholder', '10');
    fireEvent.change(limit, { target: { value: '25' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'top', groupBy: 'action', limit: 25 });
    fireEvent.change(limit, { target: { value: '' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'top', groupBy: 'action' });
  });

  it('shows an error for a limit above the maximum', () => {
    setup({ refId: 'A', queryType: 'logs', limit: 20000 });
    expect(screen.getByText('Limit must be a whole number from 1 to 10000')).toBeInTheDocument();
  });

  it('refuses a top limit above 1000', () => {
    setup({ refId: 'A', queryType: 'top', groupBy: 'action', limit: 5000 });
    expect(screen.getByText('Limit must be a whole number from 1 to 1000')).toBeInTheDocument();
  });

  it('limits the series of a time series, keeping all by default', () => {
    const { onChange } = setup({ refId: 'A', queryType: 'timeseries', groupBy: 'principal' });
    const limit = screen.getByTestId(selectors.query.limit);
    expect(limit).toHaveAttribute('placeholder', 'all');
    fireEvent.change(limit, { target: { value: '20' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'timeseries', groupBy: 'principal', limit: 20 });
  });

  it('builds the tuple of a new terms query', async () => {
    const { onChange } = setup({ refId: 'A', queryType: 'newTerms', fields: ['principal'] });
    await pick(selectors.query.fields, 'Source IP');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'newTerms', fields: ['principal', 'sourceIp'] });
  });

  it('refuses a fourth field in a new terms tuple', async () => {
    const { onChange } = setup({ refId: 'A', queryType: 'newTerms', fields: ['principal', 'sourceIp', 'userAgent'] });
    await pick(selectors.query.fields, 'Action');
    expect(onChange).not.toHaveBeenCalled();
    expect(screen.getByText('A tuple has at most 3 fields: remove one first')).toBeInTheDocument();
  });

  it('edits the lookback, 30d when empty', () => {
    const { onChange } = setup({ refId: 'A', queryType: 'newTerms', fields: ['principal'], lookback: '14d' });
    const lookback = screen.getByTestId(selectors.query.lookback);
    expect(lookback).toHaveAttribute('placeholder', '30d');
    fireEvent.change(lookback, { target: { value: '7d' } });
    expect(onChange).toHaveBeenLastCalledWith({
      refId: 'A',
      queryType: 'newTerms',
      fields: ['principal'],
      lookback: '7d',
    });
    fireEvent.change(lookback, { target: { value: '' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'newTerms', fields: ['principal'] });
  });

  it.each([
    ['400d', '400d is too long: at most 365d'],
    ['a month', '"a month" is not a lookback: use days such as 30d, or a Go duration such as 12h'],
  ])('flags the lookback %p at once', (lookback, message) => {
    setup({ refId: 'A', queryType: 'newTerms', fields: ['principal'], lookback });
    expect(screen.getByText(message)).toBeInTheDocument();
  });

  it('drops the new terms settings when switching to another type', () => {
    const { onChange } = setup({ refId: 'A', queryType: 'newTerms', fields: ['sourceIp'], lookback: '7d' });
    fireEvent.click(screen.getByLabelText('Top'));
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'top', groupBy: 'action' });
  });

  it('runs the query once edits pause', () => {
    jest.useFakeTimers();
    try {
      const { onRunQuery } = setup({ refId: 'A', queryType: 'logs' });
      const search = screen.getByTestId(selectors.query.search);
      fireEvent.change(search, { target: { value: 't' } });
      fireEvent.change(search, { target: { value: 'to' } });
      expect(onRunQuery).not.toHaveBeenCalled();
      act(() => {
        jest.advanceTimersByTime(500);
      });
      expect(onRunQuery).toHaveBeenCalledTimes(1);
    } finally {
      jest.useRealTimers();
    }
  });
});

// The backend embeds the same table: the editors must offer exactly its defaults and maxima.
describe('limits table', () => {
  const table: Record<string, { default: number; max: number }> = JSON.parse(
    readFileSync(join(__dirname, '../../pkg/query/limits.json'), 'utf8')
  );

  it('has a default and a maximum for every query type', () => {
    expect(Object.keys(table).sort()).toEqual([...QUERY_TYPES].sort());
    for (const { default: byDefault, max } of Object.values(table)) {
      expect(Number.isInteger(byDefault) && Number.isInteger(max) && byDefault >= 0 && byDefault <= max).toBe(true);
    }
  });

  function expectLimitField(byDefault: number, max: number) {
    const limit = screen.getByTestId(selectors.query.limit);
    expect(limit).toHaveAttribute('placeholder', byDefault > 0 ? String(byDefault) : 'all');
    expect(limit).toHaveAttribute('max', String(max));
  }

  it.each(QUERY_TYPES)('the %s editor offers the default and accepts up to the maximum', (queryType) => {
    const { default: byDefault, max } = table[queryType];
    const props = { onChange: jest.fn(), onRunQuery: jest.fn(), datasource };
    const { rerender } = render(<QueryEditor {...props} query={deepFreeze({ refId: 'A', queryType, limit: max })} />);
    expectLimitField(byDefault, max);
    expect(screen.queryByText(/Limit must be/)).not.toBeInTheDocument();
    rerender(<QueryEditor {...props} query={deepFreeze({ refId: 'A', queryType, limit: max + 1 })} />);
    expect(screen.getByText(`Limit must be a whole number from 1 to ${max}`)).toBeInTheDocument();
  });

  it('the variable editor offers the values default and maximum', () => {
    setup({ refId: 'A', queryType: 'values', field: 'action' }, 'variable');
    expectLimitField(table.values.default, table.values.max);
  });
});

describe('VariableQueryEditor', () => {
  it('builds a values query: all service accounts', async () => {
    const { onChange } = setup({ refId: 'A' }, 'variable');
    await pick(selectors.query.field, 'Principal');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'values', field: 'principal' });
  });

  it('narrows the values with filters', async () => {
    const { onChange } = setup({ refId: 'A', queryType: 'values', field: 'principal' }, 'variable');
    await pick(selectors.query.principalType, 'Service account');
    await waitFor(() =>
      expect(onChange).toHaveBeenLastCalledWith({
        refId: 'A',
        queryType: 'values',
        field: 'principal',
        principalType: 'serviceAccount',
      })
    );
    expect(screen.queryByTestId(selectors.query.search)).not.toBeInTheDocument();
  });

  it('excludes principals from the values', () => {
    const { onChange } = setup(
      { refId: 'A', queryType: 'values', field: 'principal', principals: ['$who'] },
      'variable'
    );
    fireEvent.click(within(screen.getByTestId(selectors.query.mode.principals)).getByLabelText('is not'));
    expect(onChange).toHaveBeenLastCalledWith({
      refId: 'A',
      queryType: 'values',
      field: 'principal',
      notPrincipals: ['$who'],
    });
  });
});
