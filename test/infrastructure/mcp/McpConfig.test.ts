import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as McpConfig from "../../../src/infrastructure/mcp/McpConfig.js"
import { scratchDir } from "../../support/Scratch.js"

const file = (text: string) => {
  const f = path.join(scratchDir("loom-mcp-"), "mcp.json")
  fs.writeFileSync(f, text)
  return f
}

describe("McpConfig", () => {
  it.effect("reads stdio and HTTP servers", () =>
    Effect.gen(function*() {
      const config = yield* McpConfig.load(file(JSON.stringify({
        servers: [{ name: "fs", command: "npx", args: ["server"] }, { name: "remote", url: "http://127.0.0.1:1/mcp" }]
      })))
      assert.deepStrictEqual(config.servers.map((s) => s.name), ["fs", "remote"])
      assert.instanceOf(config.servers[0], McpConfig.StdioServer)
      assert.instanceOf(config.servers[1], McpConfig.HttpServer)
    }))

  it.effect("a bad file names the offending field", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.flip(
        McpConfig.load(file(JSON.stringify({ servers: [{ name: "bad name!", command: "x" }] })))
      )
      assert.strictEqual(bad.field, "servers.0.name")
      assert.include(bad.message, "servers.0.name")
      const notJson = yield* Effect.flip(McpConfig.load(file("{")))
      assert.strictEqual(notJson._tag, "McpConfigError")
      const missing = yield* Effect.flip(McpConfig.load("/no/such/file.json"))
      assert.strictEqual(missing._tag, "McpConfigError")
    }))
})
