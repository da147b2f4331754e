import { defineConfig } from "vitest/config"

/** `npm run test:package`: the packed package in a fresh project (installs a native module, so minutes, not seconds). */
export default defineConfig({
  test: {
    include: ["test/package/**/*.test.ts"],
    testTimeout: 600_000,
    hookTimeout: 60_000
  }
})
