// ESLint flat config: typescript-eslint with type information (one program over the whole repo,
// tsconfig.eslint.json), so that promise misuse is caught across packages. Formatting is Prettier's job
// (.prettierrc.json); no rule here is about layout. `npm run lint` runs it with --max-warnings 0.
import js from '@eslint/js';
import globals from 'globals';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** Vitest modifiers that leave a test out of a run: the house rule is no `.only` and no skipped tests. */
const skippingModifiers = ['only', 'skip', 'todo', 'skipIf', 'runIf'].flatMap((property) =>
  ['describe', 'it', 'test'].map((object) => ({
    object,
    property,
    message: 'No .only or skipped tests (CONTRIBUTING.md).',
  })),
);

export default defineConfig(
  {
    ignores: [
      '**/node_modules/',
      '**/dist/',
      '**/.turbo/',
      'coverage/',
      'bench/results/',
      '.mssh-dev/',
      '.tmp/',
      'migrations/drizzle/',
    ],
  },
  js.configs.recommended,
  { languageOptions: { globals: globals.node }, linterOptions: { reportUnusedDisableDirectives: 'error' } },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { project: './tsconfig.eslint.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // The promise rules are the reason this linter is type-aware: keep them on at full strength.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
        },
      ],
      // `import type` (or an inline `type`) for what is only a type: the bundle never loads a module for a type.
      // `import('x').T` in a type position stays allowed (tests use it for one-off types).
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false },
      ],
      // reject(e) with what a catch caught passes the error on as it is; a string or a literal is still refused.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // The no-unsafe-* family flags every use of an `any` (mostly `await res.json()` in tests and ssh2's
      // untyped internals): worth turning on once those boundaries are typed, not a finding to patch line by line.
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // `async` without `await` is how this code says "returns a promise" (fastify plugins, interface
      // implementations): dropping it would turn a rejection into a synchronous throw.
      '@typescript-eslint/require-await': 'off',
    },
  },
  { rules: { 'no-restricted-properties': ['error', ...skippingModifiers] } },
  {
    // CommonJS launchers and preloads: require() and a module scope of their own.
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
  },
);
