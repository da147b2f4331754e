import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"

describe("README", () => {
  it("shows the library example that tsc checks in test/readme/example.ts", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8")
    const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1]
    const example = readFileSync(new URL("./example.ts", import.meta.url), "utf8").split("\n").slice(1).join("\n")
    assert.strictEqual(block, example)
  })
  it("shows the two quick-start commands", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8")
    assert.include(readme, "npm install && npm start")
    assert.include(readme, "npm install && npm test")
  })
})
