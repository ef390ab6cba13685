/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // `npm run build` (tsc --noEmit) type-checks; jest only transpiles.
  transform: { '^.+\\.ts$': 'ts-jest' },
};
