import { defineConfig } from 'vitest/config';

// `npm run chaos`: the chaos and soak profiles (test/chaos/*.chaos.ts), one file at a time, each with its own
// local stack, simulator and worker process. The short profile lives in test/chaos.short.test.ts (npm test).
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.chaos.ts'],
    testTimeout: 60 * 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
  },
});
