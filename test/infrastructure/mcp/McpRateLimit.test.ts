import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Schedule, TestClock } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import * as McpConfig from "../../../src/infrastructure/mcp/McpConfig.js"
import * as McpConnection from "../../../src/infrastructure/mcp/McpConnection.js"
import type * as RateLimit from "../../../src/infrastructure/resilience/RateLimit.js"
import { scratchDir } from "../../support/Scratch.js"
import { settle, sleepingUntil } from "../resilience/TestClockSleeps.js"

/** The reference "everything" server from npm, over stdio. */
const everythingEntry = createRequire(import.meta.url).resolve("@modelcontextprotocol/server-everything/dist/index.js")

const connect = (rateLimit: RateLimit.Rate) =>
  McpConnection.make({
    spec: new McpConfig.StdioServer({
      name: "everything",
      command: process.execPath,
      args: [everythingEntry, "stdio"],
      rateLimit
    }),
    connectTimeout: "30 seconds",
    listTimeout: "30 seconds",
    callTimeout: "30 seconds",
    reconnect: Schedule.spaced("100 millis")
  })

const echo = (connection: McpConnection.McpConnection, message: string) =>
  connection.call("echo", { message }).pipe(Effect.map((result) => result.content))

const calls = (connection: McpConnection.McpConnection) => Effect.map(connection.stats, (s) => s.callRequests)

describe("McpConfig rateLimit", () => {
  const file = (servers: unknown) => {
    const f = path.join(scratchDir("loom-mcp-"), "mcp.json")
    fs.writeFileSync(f, JSON.stringify({ servers }))
    return f
  }

  it.effect("reads a server's rateLimit, and names the field when it is bad", () =>
    Effect.gen(function*() {
      const config = yield* McpConfig.load(file([
        { name: "local", command: "npx", rateLimit: "10/second" },
        { name: "remote", url: "http://127.0.0.1:1/mcp", rateLimit: "100/minute" },
        { name: "free", command: "npx" }
      ]))
      assert.deepStrictEqual(config.servers.map((s) => s.rateLimit), [
        { limit: 10, interval: Duration.seconds(1) },
        { limit: 100, interval: Duration.minutes(1) },
        undefined
      ])
      const bad = yield* Effect.flip(McpConfig.load(file([{ name: "x", command: "npx", rateLimit: "fast" }])))
      assert.strictEqual(bad.field, "servers.0.rateLimit")
    }))
})

describe("an MCP server's rate limit, against @modelcontextprotocol/server-everything", () => {
  it.scoped("holds back the call over the limit until the budget has it, then sends it", () =>
    Effect.gen(function*() {
      // two calls a second: two at once, then one every 500 ms
      const connection = yield* connect({ limit: 2, interval: Duration.seconds(1) })
      yield* echo(connection, "one")
      yield* echo(connection, "two")
      assert.strictEqual(yield* calls(connection), 2)
      const third = yield* Effect.fork(echo(connection, "three"))
      yield* sleepingUntil(500)
      yield* TestClock.adjust("499 millis")
      yield* settle
      assert.strictEqual(yield* calls(connection), 2, "the third call waits")
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Fiber.join(third), [{ type: "text", text: "Echo: three" }])
      assert.strictEqual(yield* calls(connection), 3)
    }), 60_000)
})
