// ESLint 9 flat config: typescript-eslint's recommended rules; Prettier owns formatting.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'assets/',
      'cdk.out/',
      '.test-out/',
      '.bench-out/',
      'coverage/',
      'test/integ/node_modules/',
      'test/integ/*.snapshot/',
      'test/integ/cdk-integ.out.*/',
      'test/consumer-latest/node_modules/',
      'test/consumer-latest/out/',
      'test/consumer-latest/cdk.out/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      'no-console': 'off',
    },
  },
  {
    // Tests walk synthesized templates: arbitrary JSON, typed `any` where a type would only restate it.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // CommonJS scripts (jest config, integ checks) run under Node as they are.
    files: ['**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: Object.fromEntries(
        [
          'require',
          'module',
          'process',
          'console',
          '__dirname',
          'Buffer',
          'structuredClone',
          'setImmediate',
          'setTimeout',
          'clearTimeout',
        ].map((name) => [name, 'readonly']),
      ),
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
