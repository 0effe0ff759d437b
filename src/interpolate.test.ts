import { DataSource } from './datasource';
import { interpolateQuery } from './interpolate';
import { WizQuery } from './types';
import { deepFreeze, fakeTemplateSrv, instanceSettings } from './__fixtures__/testUtils';

const templateSrv = fakeTemplateSrv({
  action: 'Login',
  actions: ['Login', 'CreateUser'],
  status: ['FAILED', 'ACCESS_DENIED'],
  who: ['alice', 'MetronLabs'],
  ips: ['10.0.0.0/8', '203.0.113.7'],
  text: 'token',
  words: ['token', 'rotate'],
  dim: 'principal',
  dims: ['status', 'action'],
  ptype: 'serviceAccount',
  ptypes: ['user', 'serviceAccount'],
});

describe('interpolateQuery', () => {
  it('replaces single-value variables in string fields', () => {
    const query = deepFreeze<WizQuery>({
      refId: 'A',
      queryType: 'top',
      search: 'rotated $text',
      groupBy: '$dim',
      principalType: '${ptype}',
    });
    expect(interpolateQuery(query, templateSrv)).toEqual({
      refId: 'A',
      queryType: 'top',
      search: 'rotated token',
      groupBy: 'principal',
      principalType: 'serviceAccount',
    });
  });

  it('expands a multi-value variable in a list field into its values', () => {
    const query = deepFreeze<WizQuery>({
      refId: 'A',
      actions: ['$actions', 'DeleteUser'],
      statuses: ['${status}'],
      principals: ['$who'],
      sourceIps: ['$ips', '192.0.2.1'],
    });
    expect(interpolateQuery(query, templateSrv)).toEqual({
      refId: 'A',
      actions: ['Login', 'CreateUser', 'DeleteUser'],
      statuses: ['FAILED', 'ACCESS_DENIED'],
      principals: ['alice', 'MetronLabs'],
      sourceIps: ['10.0.0.0/8', '203.0.113.7', '192.0.2.1'],
    });
  });

  it('expands multi-value variables in the excluded lists too', () => {
    const query = deepFreeze<WizQuery>({
      refId: 'A',
      notActions: ['$actions'],
      notStatuses: ['SUCCESS'],
      notPrincipals: ['${who}', 'terraform-ci'],
      notSourceIps: ['$ips'],
    });
    expect(interpolateQuery(query, templateSrv)).toEqual({
      refId: 'A',
      notActions: ['Login', 'CreateUser'],
      notStatuses: ['SUCCESS'],
      notPrincipals: ['alice', 'MetronLabs', 'terraform-ci'],
      notSourceIps: ['10.0.0.0/8', '203.0.113.7'],
    });
  });

  it('keeps plain values and removes duplicates', () => {
    const query = deepFreeze<WizQuery>({ refId: 'A', actions: ['Login', '$action'] });
    expect(interpolateQuery(query, templateSrv).actions).toEqual(['Login']);
  });

  it('turns multi-value variables in scalar fields into something the backend accepts', () => {
    const query = deepFreeze<WizQuery>({
      refId: 'A',
      search: '$words',
      field: '$dims',
      principalType: '$ptypes',
    });
    const out = interpolateQuery(query, templateSrv);
    expect(out.search).toBe('token rotate');
    expect(out.field).toBe('status');
    expect(out).not.toHaveProperty('principalType');
  });

  it('expands the fields of a new terms query and takes one lookback', () => {
    const query = deepFreeze<WizQuery>({
      refId: 'A',
      queryType: 'newTerms',
      fields: ['$dims', 'sourceIp'],
      lookback: '$window',
    });
    const withWindow = fakeTemplateSrv({ dims: ['status', 'action'], window: ['7d', '30d'] });
    expect(interpolateQuery(query, withWindow)).toEqual({
      refId: 'A',
      queryType: 'newTerms',
      fields: ['status', 'action', 'sourceIp'],
      lookback: '7d',
    });
  });

  it('prefers scoped variables (repeated panels)', () => {
    const query = deepFreeze<WizQuery>({ refId: 'A', actions: ['$action'] });
    const scoped = { action: { text: 'Logout', value: 'Logout' } };
    expect(interpolateQuery(query, templateSrv, scoped).actions).toEqual(['Logout']);
  });

  it('does not mutate the query it is given', () => {
    const query = deepFreeze<WizQuery>({ refId: 'A', actions: ['$actions'], search: '$text' });
    const copy = JSON.parse(JSON.stringify(query));
    interpolateQuery(query, templateSrv);
    expect(query).toEqual(copy);
  });
});

describe('DataSource.applyTemplateVariables', () => {
  const ds = new DataSource(instanceSettings(), templateSrv);

  it('interpolates variables and hands the ad-hoc filters to the backend as they are', () => {
    const query = deepFreeze<WizQuery>({ refId: 'A', queryType: 'logs', actions: ['$actions'] });
    const filters = deepFreeze([
      { key: 'action', operator: '!=', value: 'Login' },
      { key: 'sourceIp', operator: '=', value: '10.0.0.0/8' },
      { key: 'userAgent', operator: '=~', value: 'Terraform/.*' },
      { key: 'principal', operator: '!~', value: '$notAVariable', keyLabel: 'principal', condition: '' },
    ]);
    expect(ds.applyTemplateVariables(query, {}, filters)).toEqual({
      refId: 'A',
      queryType: 'logs',
      actions: ['Login', 'CreateUser'],
      adhocFilters: [
        { key: 'action', operator: '!=', value: 'Login' },
        { key: 'sourceIp', operator: '=', value: '10.0.0.0/8' },
        { key: 'userAgent', operator: '=~', value: 'Terraform/.*' },
        { key: 'principal', operator: '!~', value: '$notAVariable' },
      ],
    });
  });

  it('ANDs the dashboard filters with those the query carries', () => {
    const query = deepFreeze<WizQuery>({
      refId: 'A',
      adhocFilters: [{ key: 'status', operator: '=', value: 'FAILED' }],
    });
    const out = ds.applyTemplateVariables(query, {}, [{ key: 'principalType', operator: '=', value: 'user' }]);
    expect(out.adhocFilters).toEqual([
      { key: 'status', operator: '=', value: 'FAILED' },
      { key: 'principalType', operator: '=', value: 'user' },
    ]);
  });

  it('adds nothing without ad-hoc filters', () => {
    const query = deepFreeze<WizQuery>({ refId: 'A', statuses: ['FAILED'] });
    expect(ds.applyTemplateVariables(query, {}, [])).toEqual({ refId: 'A', statuses: ['FAILED'] });
    expect(ds.applyTemplateVariables(query, {})).toEqual({ refId: 'A', statuses: ['FAILED'] });
  });
});
