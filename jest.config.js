// Unit specs sit beside the code (src/**/*.spec.ts); the specs in test/ say their kind in their
// suffix: contract-spec (the stores in process), model-spec (model-based), e2e-spec (the app in
// process over HTTP), process-spec (the built server as a child process), check-spec (checks of
// the repository itself). See "Tests by kind" in docs/decisions.md.
const shared = {
  testEnvironment: 'node',
  moduleFileExtensions: ['ts', 'js', 'json'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { isolatedModules: true, tsconfig: 'tsconfig.json' }],
  },
};

module.exports = {
  testTimeout: 60000,
  // The process specs run dist/main.js: rebuild it first when src/ is newer (silent when fresh).
  globalSetup: '<rootDir>/test/support/build-if-stale.js',
  projects: [
    // Every test, on Express (the default platform).
    {
      ...shared,
      displayName: 'default',
      roots: ['<rootDir>/src', '<rootDir>/test'],
      testRegex: '.*\\.(spec|contract-spec|model-spec|e2e-spec|process-spec|check-spec)\\.ts$',
    },
    // The HTTP suites (`.http.` before the kind) again, as they stand, on Fastify.
    {
      ...shared,
      displayName: 'fastify',
      roots: ['<rootDir>/test'],
      testRegex: '.*\\.http\\.(e2e-spec|process-spec)\\.ts$',
      setupFilesAfterEnv: ['<rootDir>/test/support/on-fastify.ts'],
    },
  ],
};
