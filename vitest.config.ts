import { defineConfig } from "vitest/config"

export default defineConfig({
  // tests import the package by its name from the sources, as tsconfig's `paths` does for tsc
  resolve: { alias: [{ find: /^loom$/, replacement: new URL("./src/index.ts", import.meta.url).pathname }] },
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/support/setup.ts"],
    exclude: ["test/package/**", "test/chaos/**", "test/load/**", "test/fuzz/**", "test/cluster/**"],
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
