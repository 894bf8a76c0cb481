import { defineConfig } from 'vitest/config';

// Training tests are CPU-bound on 2 cores: run files one after another so they do not fight for cores.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
