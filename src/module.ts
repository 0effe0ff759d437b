import { DataSourcePlugin } from '@grafana/data';

import { DataSource } from './datasource';
import { ConfigEditor } from './components/ConfigEditor';
import { QueryEditor } from './components/QueryEditor';
import { WizOptions, WizQuery, WizSecureJsonData } from './types';

export const plugin = new DataSourcePlugin<DataSource, WizQuery, WizOptions, WizSecureJsonData>(DataSource)
  .setConfigEditor(ConfigEditor)
  .setQueryEditor(QueryEditor);
