import React from 'react';
import { act, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { DataSourceSettings } from '@grafana/data';
import { of, throwError } from 'rxjs';

import { ConfigEditor } from './ConfigEditor';
import { selectors } from './selectors';
import { SyncStatus, WizOptions, WizSecureJsonData } from '../types';
import { deepFreeze } from '../__fixtures__/testUtils';

const fetchMock = jest.fn();
jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getBackendSrv: () => ({ fetch: fetchMock }),
}));

const STATUS: SyncStatus = {
  state: 'backfilling',
  events: 123456,
  oldest: '2026-06-01T00:00:03Z',
  newest: '2026-11-26T11:59:00Z',
  syncedUpTo: '2026-11-26T11:58:00Z',
  lastSyncAt: '2026-11-26T11:58:30Z',
  lastError: 'rate limited by Wiz, retrying in 30s',
  backfill: { from: '2026-06-01T00:00:00Z', to: '2026-11-26T11:00:00Z', done: 0.35 },
  nextSyncAt: '2026-11-26T11:59:30Z',
  cacheFile: '/var/lib/grafana/seed-wizauditlogs/1/wiz-demo.sqlite',
  cacheBytes: 5 * 1024 * 1024,
};

function settings(
  jsonData: WizOptions = { dataCenter: 'us17' },
  extra: Partial<DataSourceSettings<WizOptions, WizSecureJsonData>> = {}
): DataSourceSettings<WizOptions, WizSecureJsonData> {
  return deepFreeze({
    id: 1,
    uid: 'wiz-demo',
    orgId: 1,
    name: 'Wiz Audit Logs',
    type: 'seed-wizauditlogs-datasource',
    typeName: 'Wiz Audit Logs',
    typeLogoUrl: '',
    access: 'proxy',
    url: '',
    user: '',
    basicAuth: false,
    basicAuthUser: '',
    isDefault: false,
    withCredentials: false,
    readOnly: false,
    version: 2,
    jsonData,
    secureJsonFields: { clientId: true, clientSecret: true },
    ...extra,
  } as DataSourceSettings<WizOptions, WizSecureJsonData>);
}

function mockBackend(status: SyncStatus = STATUS) {
  fetchMock.mockImplementation(({ method, url }: { method: string; url: string }) => {
    if (method === 'GET' && url === '/api/datasources/uid/wiz-demo/resources/sync/status') {
      return of({ status: 200, data: status });
    }
    if (method === 'POST' && url === '/api/datasources/uid/wiz-demo/resources/sync/run') {
      return of({ status: 202, data: {} });
    }
    return throwError(() => new Error(`unexpected ${method} ${url}`));
  });
}

beforeEach(() => {
  fetchMock.mockReset();
  mockBackend();
});

describe('ConfigEditor', () => {
  it('writes the data center to jsonData', async () => {
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={settings({})} onOptionsChange={onOptionsChange} />);
    fireEvent.change(screen.getByTestId(selectors.config.dataCenter), { target: { value: 'eu2' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(expect.objectContaining({ jsonData: { dataCenter: 'eu2' } }));
    await screen.findByTestId(selectors.syncStatus.state);
  });

  it('shows configured secrets without their values', async () => {
    render(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
    expect(screen.getAllByText('Reset')).toHaveLength(2);
    expect(screen.getByTestId(selectors.config.clientId)).toHaveValue('configured');
    expect(screen.getByTestId(selectors.config.clientSecret)).toHaveValue('configured');
    await screen.findByTestId(selectors.syncStatus.state);
  });

  it('resets one secret and keeps the other', async () => {
    const onOptionsChange = jest.fn();
    const options = settings(undefined, { secureJsonData: { clientId: 'new-id' } });
    render(<ConfigEditor options={options} onOptionsChange={onOptionsChange} />);
    fireEvent.click(screen.getAllByText('Reset')[1]);
    expect(onOptionsChange).toHaveBeenCalledWith(
      expect.objectContaining({
        secureJsonFields: { clientId: true, clientSecret: false },
        secureJsonData: { clientId: 'new-id', clientSecret: '' },
      })
    );
    await screen.findByTestId(selectors.syncStatus.state);
  });

  it('types a secret without dropping the other', async () => {
    const onOptionsChange = jest.fn();
    const options = settings(undefined, {
      secureJsonFields: {},
      secureJsonData: { clientId: 'id' },
    });
    render(<ConfigEditor options={options} onOptionsChange={onOptionsChange} />);
    fireEvent.change(screen.getByTestId(selectors.config.clientSecret), { target: { value: 's3cret' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ secureJsonData: { clientId: 'id', clientSecret: 's3cret' } })
    );
    await screen.findByTestId(selectors.syncStatus.state);
  });

  it('asks for missing secrets once the data source was saved', async () => {
    render(<ConfigEditor options={settings(undefined, { secureJsonFields: {} })} onOptionsChange={jest.fn()} />);
    expect(screen.getByText('Client ID is required')).toBeInTheDocument();
    expect(screen.getByText('Client Secret is required')).toBeInTheDocument();
    await screen.findByTestId(selectors.syncStatus.state);
  });

  it('explains invalid settings next to their fields', async () => {
    const jsonData: WizOptions = {
      dataCenter: 'US 17',
      apiUrl: 'http://wiz.example.com/graphql',
      pollInterval: '5s',
      requestsPerSecond: 20,
      pageSize: 0,
      retentionDays: 1.5,
      backfillStart: '2999-01-01',
    };
    render(<ConfigEditor options={settings(jsonData)} onOptionsChange={jest.fn()} />);
    expect(screen.getByText(/"US 17" is not a Wiz data center/)).toBeInTheDocument();
    expect(screen.getByText(/uses plain http to a non-loopback host/)).toBeInTheDocument();
    expect(screen.getByText('5s is too short: at least 10s')).toBeInTheDocument();
    expect(screen.getByText('Must be a number above 0 and at most 10')).toBeInTheDocument();
    expect(screen.getByText('Must be a whole number from 1 to 500')).toBeInTheDocument();
    expect(screen.getByText(/whole number of days, 0 or more/)).toBeInTheDocument();
    expect(screen.getByText(/is in the future/)).toBeInTheDocument();
    await screen.findByTestId(selectors.syncStatus.state);
  });

  it('warns when the backfill start is older than 180 days', async () => {
    render(
      <ConfigEditor
        options={settings({ dataCenter: 'us17', backfillStart: '2020-01-01' })}
        onOptionsChange={jest.fn()}
      />
    );
    expect(screen.getByText(/the backfill will start 180 days ago instead/)).toBeInTheDocument();
    await screen.findByTestId(selectors.syncStatus.state);
  });

  it('clears the backfill start', async () => {
    const onOptionsChange = jest.fn();
    render(
      <ConfigEditor
        options={settings({ dataCenter: 'us17', backfillStart: '2026-06-01' })}
        onOptionsChange={onOptionsChange}
      />
    );
    fireEvent.click(screen.getByTestId(selectors.config.backfillClear));
    expect(onOptionsChange).toHaveBeenLastCalledWith(expect.objectContaining({ jsonData: { dataCenter: 'us17' } }));
    await screen.findByTestId(selectors.syncStatus.state);
  });

  it('stores advanced numbers as numbers and drops emptied ones', async () => {
    const onOptionsChange = jest.fn();
    render(
      <ConfigEditor options={settings({ dataCenter: 'us17', pageSize: 100 })} onOptionsChange={onOptionsChange} />
    );
    fireEvent.change(screen.getByTestId(selectors.config.requestsPerSecond), { target: { value: '2.5' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ jsonData: { dataCenter: 'us17', pageSize: 100, requestsPerSecond: 2.5 } })
    );
    fireEvent.change(screen.getByTestId(selectors.config.pageSize), { target: { value: '' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(expect.objectContaining({ jsonData: { dataCenter: 'us17' } }));
    await screen.findByTestId(selectors.syncStatus.state);
  });
});

describe('sync status', () => {
  it('renders the status of the saved data source', async () => {
    render(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
    expect(await screen.findByTestId(selectors.syncStatus.state)).toHaveTextContent('Backfilling');
    expect(screen.getByTestId(selectors.syncStatus.events)).toHaveTextContent('123,456');
    expect(screen.getByTestId(selectors.syncStatus.syncedUpTo)).toHaveTextContent('2026-11-26 11:58:00');
    expect(screen.getByTestId(selectors.syncStatus.lastError)).toHaveTextContent('rate limited by Wiz');
    expect(screen.getByTestId(selectors.syncStatus.cacheFile)).toHaveTextContent(
      '/var/lib/grafana/seed-wizauditlogs/1/wiz-demo.sqlite (5.0 MiB)'
    );
    const progress = screen.getByRole('progressbar', { name: 'Backfill progress' });
    expect(progress).toHaveAttribute('value', '0.35');
    expect(screen.getByTestId(selectors.syncStatus.backfill)).toHaveTextContent('35%');
  });

  it('names the syncing replica when the cache is the shared PostgreSQL database', async () => {
    mockBackend({ ...STATUS, backend: 'postgres', role: 'follower', leader: 'grafana-1:4242', cacheFile: null });
    render(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
    expect(await screen.findByTestId(selectors.syncStatus.leader)).toHaveTextContent(
      'grafana-1:4242 (this replica is the follower)'
    );
    expect(screen.getByTestId(selectors.syncStatus.cacheFile)).toHaveTextContent('PostgreSQL, shared by Grafana');
  });

  it('says when the backfill is complete and hides it when there is none', async () => {
    mockBackend({ ...STATUS, state: 'idle', lastError: null, backfill: { ...STATUS.backfill!, done: 1 } });
    const { unmount } = render(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
    expect(await screen.findByTestId(selectors.syncStatus.backfill)).toHaveTextContent('complete');
    expect(screen.queryByTestId(selectors.syncStatus.lastError)).not.toBeInTheDocument();
    unmount();

    mockBackend({ ...STATUS, backfill: null });
    render(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
    await screen.findByTestId(selectors.syncStatus.state);
    expect(screen.queryByTestId(selectors.syncStatus.backfill)).not.toBeInTheDocument();
  });

  it('refreshes every few seconds and stops on unmount', async () => {
    jest.useFakeTimers();
    try {
      const { unmount } = render(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
      await act(async () => {});
      expect(fetchMock).toHaveBeenCalledTimes(1);
      await act(async () => {
        jest.advanceTimersByTime(5000);
      });
      expect(fetchMock).toHaveBeenCalledTimes(2);
      unmount();
      await act(async () => {
        jest.advanceTimersByTime(30000);
      });
      expect(fetchMock).toHaveBeenCalledTimes(2);
    } finally {
      jest.useRealTimers();
    }
  });

  it('shows why the status cannot be loaded', async () => {
    fetchMock.mockReturnValue(
      throwError(() => ({ status: 500, statusText: 'Internal Server Error', data: { message: 'cache is locked' } }))
    );
    render(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
    expect(await screen.findByTestId(selectors.syncStatus.loadError)).toHaveTextContent('cache is locked');
  });

  it('starts a sync with "Sync now"', async () => {
    render(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
    await screen.findByTestId(selectors.syncStatus.state);
    fireEvent.click(screen.getByTestId(selectors.syncStatus.syncNow));
    expect(await screen.findByText('Sync started')).toBeInTheDocument();
    expect(fetchMock).toHaveBeenCalledWith(
      expect.objectContaining({ method: 'POST', url: '/api/datasources/uid/wiz-demo/resources/sync/run' })
    );
    await waitFor(() => expect(fetchMock.mock.calls.filter(([r]) => r.method === 'GET').length).toBe(2));
  });

  it('reports a sync/run answer other than 202', async () => {
    fetchMock.mockImplementation(({ method }: { method: string }) =>
      method === 'POST' ? of({ status: 200, data: {} }) : of({ status: 200, data: STATUS })
    );
    render(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
    await screen.findByTestId(selectors.syncStatus.state);
    fireEvent.click(screen.getByTestId(selectors.syncStatus.syncNow));
    expect(await screen.findByText(/Unexpected answer from sync\/run: HTTP 200/)).toBeInTheDocument();
  });
});
