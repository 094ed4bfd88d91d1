import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/support/globalsetup.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    // At least two test files at a time: most e2e time is spent waiting on a daemon, and vitest's
    // default (one less than the cores) runs a two-core machine's suite one file at a time.
    poolOptions: { forks: { maxForks: Math.max(2, availableParallelism() - 1) } },
    fileParallelism: true,
  },
});
