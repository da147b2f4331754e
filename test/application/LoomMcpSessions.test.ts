import { assert, describe, it } from "@effect/vitest"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { ConfigProvider, type Duration, Effect, Fiber, Layer, Schedule, Schema } from "effect"
import * as DemoTools from "../../src/application/demo/DemoTools.js"
import * as LoomMcpServer from "../../src/application/LoomMcpServer.js"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import * as Tool from "../../src/domain/Tool.js"
import { ToolRegistry } from "../../src/domain/ToolRegistry.js"
import { HttpServer } from "../../src/infrastructure/mcp/McpConfig.js"
import * as McpConnector from "../../src/infrastructure/mcp/McpConnector.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"

/** A registry whose listing reads the tools, then takes `delay` to answer: a slow server's tools/list. */
const slowRegistry = (delay: Duration.DurationInput) =>
  Layer.effect(
    ToolRegistry,
    Effect.map(ToolRegistry, (inner) =>
      ToolRegistry.of({ ...inner, list: Effect.zipLeft(inner.list, Effect.sleep(delay)) }))
  ).pipe(Layer.provide(InMemoryToolRegistry.layer(DemoTools.all)))

const services = (registry: Layer.Layer<ToolRegistry>) =>
  Layer.mergeAll(
    registry,
    Timeouts.Timeouts.Default,
    ToolExecutor.layerIo().pipe(Layer.provide([registry, Timeouts.Timeouts.Default]))
  )

const late = Tool.make({
  name: "late",
  description: "registered while a listing was in flight",
  input: Schema.Struct({}),
  output: Schema.String,
  handler: () => Effect.succeed("here")
})

describe("Loom's MCP server and connector under change", () => {
  it.live(
    "a tool list in flight when list_changed arrives does not overwrite the invalidation",
    () =>
      Effect.gen(function*() {
        const server = yield* LoomMcpServer.make
        const { url } = yield* server.serveHttp()
        const connector = yield* McpConnector.make({ servers: [new HttpServer({ name: "loom", url })] })
        const names = Effect.map(connector.list, (listing) => listing.tools.map((t): string => t.name))
        // the listing starts, reads the tools without `late`, and answers 400 ms later
        const first = yield* Effect.fork(names)
        yield* Effect.sleep("100 millis")
        yield* (yield* ToolRegistry).register(late)
        assert.include(yield* Fiber.join(first), "loom.weather")
        // the change arrived during that listing: the cached list must not be the stale one
        const listed = yield* names.pipe(
          Effect.filterOrFail((all) => all.includes("loom.late"), () => "stale list"),
          Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.intersect(Schedule.recurs(40))))
        )
        assert.include(listed, "loom.late")
      }).pipe(Effect.scoped, Effect.provide(services(slowRegistry("400 millis")))),
    30_000
  )

  it.live(
    "an HTTP session with no request for LOOM_MCP_SESSION_IDLE is closed",
    () =>
      Effect.gen(function*() {
        const server = yield* LoomMcpServer.make
        const { url } = yield* server.serveHttp()
        const client = new Client({ name: "test", version: "1.0.0" }, { capabilities: {} })
        yield* Effect.promise(() => client.connect(new StreamableHTTPClientTransport(new URL(url))))
        assert.strictEqual(yield* server.sessions, 1)
        const gone = yield* server.sessions.pipe(
          Effect.filterOrFail((n) => n === 0, () => "still open"),
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.intersect(Schedule.recurs(40)))),
          Effect.either
        )
        yield* Effect.promise(() => client.close())
        assert.isTrue(gone._tag === "Right", "the idle session was closed")
      }).pipe(
        Effect.scoped,
        Effect.provide(services(InMemoryToolRegistry.layer(DemoTools.all))),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["LOOM_MCP_SESSION_IDLE", "500 millis"]])))
      ),
    30_000
  )
})
