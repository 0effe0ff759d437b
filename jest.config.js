// force timezone to UTC to allow tests to work regardless of local timezone
// generally used by snapshots, but can affect specific tests
process.env.TZ = 'UTC';

const base = require('./.config/jest.config');

// The scaffold's swc transform only matches .js/.jsx/.ts/.tsx. Some ESM-only dependencies of
// @grafana/data (d3-color and friends) ship .mjs files: run them through the same transform.
const [[, swcTransform]] = Object.entries(base.transform);

module.exports = {
  ...base,
  transform: {
    ...base.transform,
    '^.+\\.mjs$': swcTransform,
  },
  // The dropdown tests drive real Grafana components; leave room on a busy machine.
  testTimeout: 30000,
  moduleFileExtensions: ['js', 'mjs', 'cjs', 'jsx', 'ts', 'tsx', 'json', 'node'],
};
