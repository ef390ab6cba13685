const os = require('os');

/** @type {import('jest').Config} */
module.exports = {
  // jest's default is one worker less than the cores: a single worker on a 2-core machine, while jest's parent
  // process mostly waits and many tests wait on child processes or timers (docs/RELIABILITY.md, "Test time").
  maxWorkers: Math.max(2, os.cpus().length - 1),
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // Consumer projects with their own node_modules and jest: test/package.test.ts runs them.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/consumer-latest/'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  // Type checking is `tsc --noEmit` in `npm test`; jest only transpiles.
  transform: { '^.+\\.ts$': 'ts-jest' },
  // aws-cdk-lib's built-in template validation only where a test asks for it (the file says why).
  setupFiles: ['<rootDir>/test/support/incidental-validation.ts'],
  setupFilesAfterEnv: ['aws-sdk-client-mock-jest'],
  // The longest files first, also on a fresh clone without jest's cache of durations (the file says why).
  testSequencer: '<rootDir>/test/support/sequencer.js',
};
