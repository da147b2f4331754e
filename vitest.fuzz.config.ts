import { defineConfig } from "vitest/config"

/**
 * The fuzz suite (`npm run test:fuzz`): fast-check properties over Loom's boundaries (HTTP
 * bodies, tool inputs, LLM and MCP replies, environment variables). One file at a time:
 * several start real servers and worker threads, and each bounds its own run time.
 */
export default defineConfig({
  // tests import the package by its name from the sources, as tsconfig's `paths` does for tsc
  resolve: { alias: [{ find: /^loom$/, replacement: new URL("./src/index.ts", import.meta.url).pathname }] },
  test: {
    include: ["test/fuzz/**/*.test.ts"],
    setupFiles: ["test/support/setup.ts"],
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 60_000
  }
})
