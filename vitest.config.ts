import { defineConfig } from 'vitest/config';

// Training tests are CPU-bound on 2 cores: run files one after another so they do not fight for cores.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // CI also writes machine-readable results, from which .ci/run prints its closing counts
    // (npm run test:sanitize names its own file).
    reporters: process.env.CI ? ['default', ['json', { outputFile: process.env.SLFER_TEST_RESULTS || 'test-results.json' }]] : ['default'],
  },
});
