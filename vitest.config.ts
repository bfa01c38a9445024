import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['libs/**/src/**/*.test.ts', 'migrations/src/**/*.test.ts', 'apps/**/src/**/*.test.ts', 'e2e/**/*.test.ts'],
    globalSetup: ['./e2e/fixtures/global-setup.ts'],
    setupFiles: ['./e2e/fixtures/setup-file.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
  },
});
