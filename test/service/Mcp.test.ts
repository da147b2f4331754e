import { assert, describe, it } from "@effect/vitest"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { Effect } from "effect"
import * as fs from "node:fs"
import { json, scratchDir, service } from "../support/Service.js"

describe("/mcp on the service's own port", () => {
  it.scoped("serves Loom's tools to the MCP SDK client beside the HTTP API", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(scratchDir),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const { url } = yield* service({ LOOM_DATA_DIR: dir })
      const client = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const c = new Client({ name: "test", version: "1.0.0" }, { capabilities: {} })
          await c.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`)))
          return c
        }),
        (c) => Effect.promise(() => c.close())
      )
      const { tools } = yield* Effect.promise(() => client.listTools())
      assert.includeMembers(tools.map((t) => t.name), ["weather", "text.chunk", "code.run_tests"])
      const called = yield* Effect.promise(() => client.callTool({ name: "weather", arguments: { city: "Oslo" } }))
      assert.isUndefined(called.isError)
      assert.include(JSON.stringify(called.content), "celsius")
      // the HTTP API answers on the same port as before
      assert.deepStrictEqual((yield* json(`${url}/health/live`)).body, { status: "ok" })
      // a request outside any session is refused with a JSON-RPC error, not a 500
      const stray = yield* json(`${url}/mcp`, { method: "GET" })
      assert.strictEqual(stray.status, 400)
    }), 60_000)
})
