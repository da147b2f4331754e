import { defineConfig } from "vitest/config"

/** `npm run test:load`: a minute of load on the real service, in CI after `npm test`. */
export default defineConfig({
  test: {
    include: ["test/load/**/*.test.ts"],
    setupFiles: ["test/support/setup.ts"],
    testTimeout: 300_000,
    hookTimeout: 60_000
  }
})
