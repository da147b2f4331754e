import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, Layer, Option, Schedule } from "effect"
import { createRequire } from "node:module"
import { ToolExecutor } from "../../../src/application/ToolExecutor.js"
import { toolCall } from "../../../src/domain/ToolCall.js"
import { ToolRegistry } from "../../../src/domain/ToolRegistry.js"
import { StdioServer } from "../../../src/infrastructure/mcp/McpConfig.js"
import { McpConnector } from "../../../src/infrastructure/mcp/McpConnector.js"
import * as Timeouts from "../../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../../src/infrastructure/tools/InMemoryToolRegistry.js"
import { eventually } from "../../support/Eventually.js"
import { isAlive } from "../../support/Pids.js"

/** The reference "everything" server from npm, over stdio. */
const everythingEntry = createRequire(import.meta.url).resolve("@modelcontextprotocol/server-everything/dist/index.js")
const everything = new StdioServer({ name: "everything", command: process.execPath, args: [everythingEntry, "stdio"] })
const dead = new StdioServer({ name: "dead", command: process.execPath, args: ["-e", "process.exit(1)"] })

const deadlines = Timeouts.Timeouts.layer({
  "mcp.connect": Duration.seconds(10),
  "mcp.list": Duration.seconds(10),
  "mcp.call": Duration.seconds(20)
})

/** The connector, and an executor over local + MCP tools. */
const layer = (servers: ReadonlyArray<StdioServer>, timeouts = deadlines) => {
  const connector = McpConnector.layer({ servers, reconnect: Schedule.spaced("100 millis") }).pipe(
    Layer.provide(timeouts)
  )
  const registry = McpConnector.layerRegistry.pipe(
    Layer.provide(InMemoryToolRegistry.layer([])),
    Layer.provide(connector)
  )
  return Layer.mergeAll(
    connector,
    registry,
    ToolExecutor.layerIo({ breaker: false }).pipe(Layer.provide(registry), Layer.provide(timeouts))
  )
}

const stats = (server: string) =>
  Effect.flatMap(
    McpConnector,
    (connector) => Effect.map(connector.status, (all) => all.find((s) => s.server === server)!)
  )

describe("McpConnector against @modelcontextprotocol/server-everything", () => {
  it.live("lists the server's tools, namespaced, and calls them, also concurrently", () =>
    Effect.gen(function*() {
      const registry = yield* ToolRegistry
      const executor = yield* ToolExecutor
      const names = (yield* registry.list).map((tool) => tool.name)
      assert.includeMembers(names, ["everything.echo", "everything.get-sum"])
      const echo = yield* executor.execute(toolCall("1", "everything.echo", { message: "hi" }))
      assert.strictEqual(echo.status, "succeeded")
      assert.deepStrictEqual((echo.output as { content: unknown }).content, [{ type: "text", text: "Echo: hi" }])
      const sums = yield* executor.executeParallel(
        Array.from({ length: 10 }, (_, i) => toolCall(`s${i}`, "everything.get-sum", { a: i, b: 100 })),
        { concurrency: 10 }
      )
      assert.deepStrictEqual(
        sums.map((r) => (r.output as { content: Array<{ text: string }> }).content[0]?.text),
        Array.from({ length: 10 }, (_, i) => `The sum of ${i} and 100 is ${i + 100}.`)
      )
    }).pipe(Effect.provide(layer([everything]))), 60_000)

  it.live("bad arguments are rejected before the call, naming the field", () =>
    Effect.gen(function*() {
      const executor = yield* ToolExecutor
      yield* executor.execute(toolCall("warm", "everything.echo", { message: "x" }))
      const before = (yield* stats("everything")).callRequests
      const result = yield* executor.execute(toolCall("1", "everything.get-sum", { a: 1, b: "two" }))
      assert.strictEqual(result.status, "rejected")
      assert.strictEqual(result.error?._tag === "InvalidToolInput" && result.error.field, "b")
      assert.strictEqual((yield* stats("everything")).callRequests, before)
    }).pipe(Effect.provide(layer([everything]))), 60_000)

  it.live("the second listing is served from cache", () =>
    Effect.gen(function*() {
      const connector = yield* McpConnector
      // The server announces list_changed once after start-up; retry until no notification lands in between.
      const unchanged = Effect.gen(function*() {
        yield* connector.list
        const first = (yield* stats("everything")).listRequests
        yield* connector.list
        const second = (yield* stats("everything")).listRequests
        return second === first
      })
      const cached = yield* unchanged.pipe(Effect.repeat({ until: (same) => same, times: 3 }))
      assert.isTrue(cached)
    }).pipe(Effect.provide(layer([everything]))), 60_000)

  it.live(
    "killing the server mid-call fails that call, typed; the connector reconnects for the next",
    () =>
      Effect.gen(function*() {
        const executor = yield* ToolExecutor
        yield* executor.execute(toolCall("warm", "everything.echo", { message: "x" }))
        const pid = (yield* stats("everything")).pid!
        const calls = (yield* stats("everything")).callRequests
        const long = yield* Effect.fork(
          executor.execute(toolCall("long", "everything.trigger-long-running-operation", { duration: 30, steps: 30 }))
        )
        yield* Effect.flatMap(stats("everything"), (s) => s.callRequests > calls ? Effect.void : Effect.fail("not yet"))
          .pipe(
            Effect.retry(Schedule.spaced("10 millis"))
          )
        process.kill(pid, "SIGKILL")
        const failed = yield* Fiber.join(long)
        assert.strictEqual(failed.status, "failed")
        assert.include(failed.error?.message, "unavailable")
        yield* eventually(() => !isAlive(pid), "the old server to be gone")
        const next = yield* executor.execute(toolCall("next", "everything.echo", { message: "again" }))
        assert.strictEqual(next.status, "succeeded", JSON.stringify(next.error))
        const after = yield* stats("everything")
        assert.strictEqual(after.connects, 2)
        assert.notStrictEqual(after.pid, pid)
      }).pipe(Effect.provide(layer([everything]))),
    60_000
  )

  it.live("interrupting a call returns at once and the connection stays usable", () =>
    Effect.gen(function*() {
      const executor = yield* ToolExecutor
      yield* executor.execute(toolCall("warm", "everything.echo", { message: "x" }))
      const long = yield* Effect.fork(
        executor.execute(toolCall("long", "everything.trigger-long-running-operation", { duration: 30, steps: 30 }))
      )
      yield* Effect.sleep("300 millis")
      const interrupted = yield* Effect.timeout(Fiber.interrupt(long), "2 seconds")
      assert.isTrue(interrupted._tag === "Failure")
      const next = yield* executor.execute(toolCall("next", "everything.echo", { message: "still here" }))
      assert.strictEqual(next.status, "succeeded")
      assert.strictEqual((yield* stats("everything")).connects, 1)
    }).pipe(Effect.provide(layer([everything]))), 60_000)

  it.live("a dead server is reported unavailable and does not hold up the others", () =>
    Effect.gen(function*() {
      const connector = yield* McpConnector
      const started = yield* Clock.currentTimeMillis
      const listing = yield* connector.list
      assert.isBelow((yield* Clock.currentTimeMillis) - started, 5000, "not held up by the dead server")
      assert.isTrue(listing.tools.some((tool) => tool.name === "everything.echo"))
      assert.deepStrictEqual(listing.unavailable.map((u) => u.server), ["dead"])
      assert.isTrue(Option.isSome(connector.connection("dead")))
      const result = yield* Effect.flatMap(ToolExecutor, (executor) =>
        executor.execute(toolCall("1", "dead.anything", {})))
      assert.strictEqual(result.status, "rejected")
    }).pipe(
      Effect.provide(layer([everything, dead]))
    ), 60_000)
})
