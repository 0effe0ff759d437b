import { plugin } from './module';

describe('plugin module', () => {
  it('exports a data source plugin with editors', () => {
    expect(plugin.components.ConfigEditor).toBeDefined();
    expect(plugin.components.QueryEditor).toBeDefined();
  });
});
