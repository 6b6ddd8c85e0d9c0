import { defineConfig } from 'vitest/config';

// One local stack (PostgreSQL + PostgREST + gateway) serves the whole run; see dev/localStack.ts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/globalSetup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
