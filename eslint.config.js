// eslint with typescript-eslint's type-checked rules: they catch unhandled promises, awaits of
// non-promises, stringified objects and `any` flowing into typed code. `npm run lint` runs it and knip.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeGlobals = Object.fromEntries(
  ['process', 'console', 'Buffer', 'URL', 'setTimeout', 'clearTimeout', 'setImmediate', 'TextEncoder', 'TextDecoder'].map((g) => [g, 'readonly']),
);

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'snapshots/', 'test/fixtures/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Async functions without await are deliberate here: they implement Promise-returning
      // interfaces (FileSource.open, readAll) and async iterables over data already in memory.
      '@typescript-eslint/require-await': 'off',
      // `_name` marks a value kept on purpose (a destructured field left out, an unused parameter).
      // A caught error is rethrown as it came; the JSON-log scanner throws its own light Fail (no
      // stack captured for each malformed line of a hostile log) and turns it into a result.
      '@typescript-eslint/only-throw-error': ['error', { allowRethrowing: true, allow: [{ from: 'file', name: 'Fail', path: 'src/formats/logs/jsonlog.ts' }] }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    // Tests compare the CLI's JSON output, parsed as `any` on purpose.
    files: ['test/**/*.ts', 'src/**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: nodeGlobals },
  },
);
