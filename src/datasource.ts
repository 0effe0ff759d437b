import {
  AdHocVariableFilter,
  CoreApp,
  DataQueryRequest,
  DataSourceInstanceSettings,
  DataSourceWithSupplementaryQueriesSupport,
  MetricFindValue,
  ScopedVars,
  SupplementaryQueryOptions,
  SupplementaryQueryType,
} from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv, TemplateSrv } from '@grafana/runtime';

import { interpolateQuery, withAdHocFilters } from './interpolate';
import { DEFAULT_QUERY, EVENT_FIELDS, EventField, WizOptions, WizQuery } from './types';
import { WizVariableSupport } from './variables';

/** refId prefix of the logs volume query that Explore runs next to a logs query. */
export const LOGS_VOLUME_REF_ID_PREFIX = 'log-volume-';

/** The timeseries grouping whose series carry a `level` label: info, warning, error or unknown. */
export const LOGS_VOLUME_GROUP_BY = 'level';
export const LOGS_VOLUME_LEVELS = ['info', 'warning', 'error', 'unknown'] as const;

export class DataSource
  extends DataSourceWithBackend<WizQuery, WizOptions>
  implements DataSourceWithSupplementaryQueriesSupport<WizQuery>
{
  constructor(
    instanceSettings: DataSourceInstanceSettings<WizOptions>,
    private readonly templateSrv: TemplateSrv = getTemplateSrv()
  ) {
    super(instanceSettings);
    // Annotations use the query model and editor of panels; each event becomes an annotation
    // whose text is the log body (the first string field of the logs frame).
    this.annotations = {
      prepareQuery: (annotation) => {
        const target = annotation.target;
        return target ? { ...target, queryType: target.queryType ?? 'logs' } : undefined;
      },
    };
    this.variables = new WizVariableSupport(this);
  }

  getDefaultQuery(_: CoreApp): Partial<WizQuery> {
    return DEFAULT_QUERY;
  }

  filterQuery(query: WizQuery): boolean {
    return !query.hide;
  }

  applyTemplateVariables(query: WizQuery, scopedVars: ScopedVars, filters?: AdHocVariableFilter[]): WizQuery {
    return withAdHocFilters(interpolateQuery(query, this.templateSrv, scopedVars), filters);
  }

  /** Distinct values of an event field in the cache, for editor dropdowns (`GET values/<field>`). */
  async getFieldValues(field: EventField | string, prefix = '', limit = 100): Promise<string[]> {
    const params: Record<string, string | number> = { limit };
    if (prefix !== '') {
      params.q = prefix;
    }
    const values = await this.getResource<unknown>(`values/${encodeURIComponent(field)}`, params);
    return Array.isArray(values) ? values.map(String) : [];
  }

  // Ad-hoc filters: any event field, with =, !=, =~ or !~; the backend applies them.
  async getTagKeys(): Promise<MetricFindValue[]> {
    return EVENT_FIELDS.map((key) => ({ text: key, value: key }));
  }

  async getTagValues(options: { key: string }): Promise<MetricFindValue[]> {
    if (!(EVENT_FIELDS as readonly string[]).includes(options.key)) {
      return [];
    }
    const values = await this.getFieldValues(options.key, '', 1000);
    return values.map((value) => ({ text: value, value }));
  }

  // Explore's logs volume histogram: event counts per level with the logs query's filters. Grafana
  // colours each series by its `level` label (info, warning, error, unknown) as it does Loki's.
  getSupportedSupplementaryQueryTypes(): SupplementaryQueryType[] {
    return [SupplementaryQueryType.LogsVolume];
  }

  getSupplementaryQuery(options: SupplementaryQueryOptions, query: WizQuery): WizQuery | undefined {
    if (options.type !== SupplementaryQueryType.LogsVolume || (query.queryType ?? 'logs') !== 'logs') {
      return undefined;
    }
    const { limit, groupBy, field, fields, lookback, ...filters } = query;
    return {
      ...filters,
      refId: `${LOGS_VOLUME_REF_ID_PREFIX}${query.refId}`,
      queryType: 'timeseries',
      groupBy: LOGS_VOLUME_GROUP_BY,
    };
  }

  getSupplementaryRequest(
    type: SupplementaryQueryType,
    request: DataQueryRequest<WizQuery>,
    options?: SupplementaryQueryOptions
  ): DataQueryRequest<WizQuery> | undefined {
    if (!this.getSupportedSupplementaryQueryTypes().includes(type)) {
      return undefined;
    }
    const targets = request.targets
      .filter((query) => !query.hide)
      .map((query) => this.getSupplementaryQuery(options ?? { type }, query))
      .filter((query): query is WizQuery => query !== undefined);
    return targets.length > 0 ? { ...request, targets } : undefined;
  }
}
