import { expect, test } from '@grafana/plugin-e2e';

import { selectors } from '../src/components/selectors';
import { answersDemoQuery, column, demoResults, SentQuery, skipWithoutGrafana } from './helpers';

skipWithoutGrafana();

const RANGE = '203.0.113.0/24'; // the demo tenant's service accounts call from this range

test('editing a query: change its type, add and remove a filter, run it', async ({ panelEditPage, components }) => {
  await panelEditPage.datasource.set('Wiz Audit Logs (demo tenant)');
  const editor = panelEditPage.getQueryEditorRow('A');
  const run = async (match: (q: SentQuery) => boolean) => {
    const response = await panelEditPage.refreshPanel({ waitForResponsePredicateCallback: answersDemoQuery(match) });
    expect(response.ok()).toBe(true);
    const answer = (await demoResults(response)).find(({ query }) => match(query));
    expect(answer?.result?.error).toBeUndefined();
    return answer?.result;
  };

  await components.radioGroup.within(editor.getByTestId(selectors.query.queryType)).check('Table');
  const table = await run((q) => q.queryType === 'table');
  expect(column(table, 'sourceIp').length).toBeGreaterThan(0);

  const sourceIps = editor.getByTestId(selectors.query.sourceIps);
  await sourceIps.getByRole('textbox').fill(RANGE);
  await sourceIps.getByRole('textbox').press('Enter');
  const filtered = await run((q) => q.queryType === 'table' && JSON.stringify(q.sourceIps) === JSON.stringify([RANGE]));
  const ips = column(filtered, 'sourceIp');
  expect(ips.length).toBeGreaterThan(0);
  expect(ips.every((ip) => String(ip).startsWith('203.0.113.'))).toBe(true);

  await sourceIps.getByRole('button', { name: `Remove tag: ${RANGE}` }).click();
  const unfiltered = await run((q) => q.queryType === 'table' && !(q.sourceIps as string[] | undefined)?.length);
  expect(column(unfiltered, 'sourceIp').some((ip) => !String(ip).startsWith('203.0.113.'))).toBe(true);
});
