import { defineConfig } from "vitest/config"

/**
 * `npm run test:cluster`: several service processes as runners of one @effect/cluster on a
 * real Postgres, one of them killed mid-run. One file at a time: it starts Postgres and
 * three runners, and bounds its own run time.
 */
export default defineConfig({
  test: {
    include: ["test/cluster/**/*.test.ts"],
    setupFiles: ["test/support/setup.ts"],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 180_000
  }
})
