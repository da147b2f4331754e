import { defineConfig } from "vitest/config"

/** `npm run test:chaos`: the service killed, stopped and fed faults at random, in CI after `npm test`. */
export default defineConfig({
  resolve: { alias: [{ find: /^loom$/, replacement: new URL("./src/index.ts", import.meta.url).pathname }] },
  test: {
    include: ["test/chaos/**/*.test.ts"],
    setupFiles: ["test/support/setup.ts"],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 60_000
  }
})
