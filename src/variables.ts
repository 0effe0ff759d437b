import { CustomVariableSupport, DataQueryRequest, DataQueryResponse } from '@grafana/data';
import { Observable } from 'rxjs';

import type { DataSource } from './datasource';
import { VariableQueryEditor } from './components/VariableQueryEditor';
import { WizQuery } from './types';

/** Template variables run `values` queries: the distinct values of a field, filters honoured. */
export class WizVariableSupport extends CustomVariableSupport<DataSource, WizQuery> {
  editor = VariableQueryEditor;

  constructor(private readonly datasource: DataSource) {
    super();
  }

  query(request: DataQueryRequest<WizQuery>): Observable<DataQueryResponse> {
    const targets = request.targets.map((query) => ({
      ...query,
      queryType: 'values' as const,
      field: query.field || 'action',
    }));
    return this.datasource.query({ ...request, targets });
  }
}
