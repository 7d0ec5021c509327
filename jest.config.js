// Unit specs sit beside the code (src/**/*.spec.ts); the store contract, e2e and process specs live in test/.
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src', '<rootDir>/test'],
  testRegex: '.*\\.(spec|contract-spec|e2e-spec|process-spec)\\.ts$',
  moduleFileExtensions: ['ts', 'js', 'json'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { isolatedModules: true, tsconfig: 'tsconfig.json' }],
  },
  testTimeout: 60000,
  // The process specs run dist/main.js: rebuild it first when src/ is newer (silent when fresh).
  globalSetup: '<rootDir>/test/support/build-if-stale.js',
};
