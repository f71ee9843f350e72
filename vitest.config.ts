import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'emulator/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: more workers only make real-socket tests fight over the CPU.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
