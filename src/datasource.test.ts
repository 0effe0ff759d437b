import { DataQueryRequest, LogLevel, SupplementaryQueryType } from '@grafana/data';

import { DataSource, LOGS_VOLUME_LEVELS } from './datasource';
import { WizQuery } from './types';
import { deepFreeze, fakeTemplateSrv, instanceSettings } from './__fixtures__/testUtils';

function dataSource() {
  return new DataSource(instanceSettings({ dataCenter: 'us17' }), fakeTemplateSrv({}));
}

describe('DataSource', () => {
  it('defaults to a logs query', () => {
    expect(dataSource().getDefaultQuery('explore' as never)).toEqual({ queryType: 'logs' });
  });

  it('skips hidden queries', () => {
    const ds = dataSource();
    expect(ds.filterQuery({ refId: 'A' })).toBe(true);
    expect(ds.filterQuery({ refId: 'A', hide: true })).toBe(false);
  });

  it('supports annotations with the panel query model, defaulting to logs', () => {
    const ds = dataSource();
    expect(ds.annotations).toBeDefined();
    const prepared = ds.annotations!.prepareQuery!({
      target: { refId: 'Anno', actions: ['Login'], notPrincipals: ['terraform-ci'] },
    } as never);
    expect(prepared).toEqual({ refId: 'Anno', actions: ['Login'], notPrincipals: ['terraform-ci'], queryType: 'logs' });
  });

  describe('logs volume', () => {
    const logsQuery = deepFreeze<WizQuery>({
      refId: 'A',
      queryType: 'logs',
      statuses: ['FAILED'],
      principals: ['alice'],
      search: 'token',
      notActions: ['TokenRefresh'],
      notSourceIps: ['10.0.0.0/8'],
      limit: 50,
    });

    it('runs a timeseries query grouped by level with the same filters', () => {
      const ds = dataSource();
      expect(ds.getSupportedSupplementaryQueryTypes()).toEqual([SupplementaryQueryType.LogsVolume]);
      expect(ds.getSupplementaryQuery({ type: SupplementaryQueryType.LogsVolume }, logsQuery)).toEqual({
        refId: 'log-volume-A',
        queryType: 'timeseries',
        groupBy: 'level',
        statuses: ['FAILED'],
        principals: ['alice'],
        notActions: ['TokenRefresh'],
        notSourceIps: ['10.0.0.0/8'],
        search: 'token',
      });
    });

    // Grafana colours a logs volume series by the `level` label of its count field, read with its
    // LogLevel names: each level the backend emits must be one of them, spelled the same.
    it('groups by levels Grafana knows, so that the bars are coloured', () => {
      for (const level of LOGS_VOLUME_LEVELS) {
        expect(LogLevel[level]).toBe(level);
      }
    });

    it('has no volume for other query types', () => {
      const ds = dataSource();
      const top: WizQuery = { refId: 'B', queryType: 'top', groupBy: 'action' };
      expect(ds.getSupplementaryQuery({ type: SupplementaryQueryType.LogsVolume }, top)).toBeUndefined();
      const request = deepFreeze({ targets: [top] } as DataQueryRequest<WizQuery>);
      expect(ds.getSupplementaryRequest(SupplementaryQueryType.LogsVolume, request)).toBeUndefined();
    });

    it('builds the supplementary request from the logs queries', () => {
      const ds = dataSource();
      const request = deepFreeze({
        requestId: 'explore',
        targets: [logsQuery, { refId: 'B', queryType: 'table' }],
      } as DataQueryRequest<WizQuery>);
      const out = ds.getSupplementaryRequest(SupplementaryQueryType.LogsVolume, request);
      expect(out?.targets.map((t) => t.refId)).toEqual(['log-volume-A']);
      expect(out?.requestId).toBe('explore');
    });
  });

  describe('ad-hoc filters', () => {
    it('offers the filterable fields as keys', async () => {
      const keys = await dataSource().getTagKeys();
      expect(keys.map((k) => k.text)).toEqual([
        'action',
        'status',
        'principal',
        'principalType',
        'sourceIp',
        'userAgent',
      ]);
    });

    it('loads values from the values endpoint', async () => {
      const ds = dataSource();
      const getResource = jest.spyOn(ds, 'getResource').mockResolvedValue(['Login', 'Logout']);
      const values = await ds.getTagValues({ key: 'action' });
      expect(getResource).toHaveBeenCalledWith('values/action', { limit: 1000 });
      expect(values).toEqual([
        { text: 'Login', value: 'Login' },
        { text: 'Logout', value: 'Logout' },
      ]);
    });

    it('offers no values for a key the backend does not take', async () => {
      const ds = dataSource();
      const getResource = jest.spyOn(ds, 'getResource');
      await expect(ds.getTagValues({ key: 'requestId' })).resolves.toEqual([]);
      expect(getResource).not.toHaveBeenCalled();
    });

    it('passes the prefix to the values endpoint', async () => {
      const ds = dataSource();
      const getResource = jest.spyOn(ds, 'getResource').mockResolvedValue(['alice']);
      await expect(ds.getFieldValues('principal', 'al', 20)).resolves.toEqual(['alice']);
      expect(getResource).toHaveBeenCalledWith('values/principal', { q: 'al', limit: 20 });
    });
  });
});
