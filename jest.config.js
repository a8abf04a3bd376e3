/** @type {import('jest').Config} */
const swc = [
  '@swc/jest',
  { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } },
];

const common = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': swc },
  moduleFileExtensions: ['ts', 'js', 'json'],
};

// The projects that need the real services: one shared Temporal + FerretDB per run (started by
// `npm test` before jest, or by this setup), workflow code bundled once. `unit` needs neither.
const services = { globalSetup: '<rootDir>/test/support/global-setup.ts' };

module.exports = {
  transform: { '^.+\\.ts$': swc },
  testTimeout: 60_000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...common,
      ...services,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts', '<rootDir>/test/e2e/**/*.test.ts'],
    },
    // Workflow code against stubbed activities (no database) and replay of the committed histories
    // in test/histories; needs only the Temporal dev server.
    { ...common, ...services, displayName: 'workflows', testMatch: ['<rootDir>/test/workflows/**/*.test.ts'] },
  ],
};
