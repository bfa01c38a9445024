import { defineConfig } from 'vitest/config';

/**
 * Two groups, one after the other: everything else two files at a time, then the files that measure
 * latency under load (`*.solo.e2e.test.ts`) alone, on an otherwise idle machine, so that what they measure
 * is the product and not the neighbouring test file.
 */
const SOLO = 'e2e/**/*.solo.e2e.test.ts';

export default defineConfig({
  test: {
    globalSetup: ['./e2e/fixtures/global-setup.ts'],
    setupFiles: ['./e2e/fixtures/setup-file.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: [
            'libs/**/src/**/*.test.ts',
            'migrations/src/**/*.test.ts',
            'apps/**/src/**/*.test.ts',
            'e2e/**/*.test.ts',
            'bench/lib/**/*.test.ts',
          ],
          exclude: [SOLO, '**/node_modules/**'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'solo',
          // Its own group, after the suite: with one worker per file, a file here runs alone while the
          // group has one file (more of them would run two at a time, like the suite).
          include: [SOLO],
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
