import { assert, describe, it } from "@effect/vitest"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { Effect, Layer, Schedule, Schema } from "effect"
import * as DemoTools from "../../src/application/demo/DemoTools.js"
import * as LoomMcpServer from "../../src/application/LoomMcpServer.js"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import type { ToolHandlerError } from "../../src/domain/Errors.js"
import * as Tool from "../../src/domain/Tool.js"
import { ToolRegistry } from "../../src/domain/ToolRegistry.js"
import { HttpServer } from "../../src/infrastructure/mcp/McpConfig.js"
import * as McpConnector from "../../src/infrastructure/mcp/McpConnector.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"
import { scratchDir } from "../support/Scratch.js"

const registry = InMemoryToolRegistry.layer(DemoTools.all)
const services = Layer.mergeAll(
  registry,
  Timeouts.Timeouts.Default,
  ToolExecutor.layerIo().pipe(Layer.provide([registry, Timeouts.Timeouts.Default]))
)

/** An SDK client connected to `url`, closed with the scope. */
const client = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const c = new Client({ name: "test", version: "1.0.0" }, { capabilities: {} })
      await c.connect(new StreamableHTTPClientTransport(new URL(url)))
      return c
    }),
    (c) => Effect.promise(() => c.close())
  )

describe("Loom as an MCP server over streamable HTTP", () => {
  it.live(
    "serves the registry's tools to the SDK client: list, call, bad arguments, unknown tool",
    () =>
      Effect.gen(function*() {
        const server = yield* LoomMcpServer.make
        const { url } = yield* server.serveHttp()
        // a request that names no session and is not `initialize` is refused and allocates nothing
        const stray = yield* Effect.promise(() =>
          fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
            body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" })
          })
        )
        assert.strictEqual(stray.status, 400)
        assert.strictEqual((yield* Effect.promise(() => fetch(url))).status, 400)
        assert.strictEqual(yield* server.sessions, 0)
        const c = yield* client(url)
        const { tools } = yield* Effect.promise(() => c.listTools())
        assert.includeMembers(tools.map((t) => t.name), ["weather", "search", "translate"])
        const weather = tools.find((t) => t.name === "weather")!
        assert.deepInclude(weather.inputSchema, { type: "object", required: ["city"] })
        const ok = yield* Effect.promise(() => c.callTool({ name: "weather", arguments: { city: "Oslo" } }))
        assert.isUndefined(ok.isError)
        assert.deepStrictEqual(ok.structuredContent, { city: "Oslo", celsius: 14 })
        const bad = yield* Effect.promise(() => c.callTool({ name: "weather", arguments: { city: 3 } }))
        assert.isTrue(bad.isError)
        assert.include((bad.content as Array<{ text: string }>)[0]!.text, "InvalidToolInput")
        assert.include((bad.content as Array<{ text: string }>)[0]!.text, "city")
        const unknown = yield* Effect.promise(() => c.callTool({ name: "nope", arguments: {} }))
        assert.isTrue(unknown.isError)
        assert.strictEqual(yield* server.sessions, 1)
      }).pipe(Effect.scoped, Effect.provide(services)),
    30_000
  )

  it.live(
    "a tool registered at run time reaches a Loom McpConnector through tools/list_changed",
    () =>
      Effect.gen(function*() {
        const server = yield* LoomMcpServer.make
        const { url } = yield* server.serveHttp()
        const connector = yield* McpConnector.make({ servers: [new HttpServer({ name: "loom", url })] })
        const names = Effect.map(connector.list, (listing): ReadonlyArray<string> => listing.tools.map((t) => t.name))
        assert.include(yield* names, "loom.weather")
        assert.notInclude(yield* names, "loom.late")
        const registry = yield* ToolRegistry
        yield* registry.register(Tool.make({
          name: "late",
          description: "registered after start",
          input: Schema.Struct({}),
          output: Schema.String,
          handler: () => Effect.succeed("here")
        }))
        const listed = yield* names.pipe(
          Effect.filterOrFail((all) => all.includes("loom.late"), () => "not listed yet"),
          Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.intersect(Schedule.recurs(200))))
        )
        assert.include(listed, "loom.late")
        // and it can be called through the connector, across the protocol
        const late = yield* connector.get("loom.late")
        assert.strictEqual(late.kind, "io")
        const output = yield* (late.kind === "io" ? late.handler({}) : Effect.die("not io"))
        assert.deepStrictEqual((output as { content: Array<{ text: string }> }).content[0]?.text, "\"here\"")
        // an isError reply becomes the tool's typed failure
        const weather = yield* connector.get("loom.weather")
        if (weather.kind !== "io") return yield* Effect.die("not an io tool")
        const refused = yield* Effect.flip(weather.handler({ city: 3 }) as Effect.Effect<void, ToolHandlerError>)
        assert.strictEqual(refused._tag, "ToolFailed")
        assert.include(refused.message, "InvalidToolInput")
      }).pipe(Effect.scoped, Effect.provide(services)),
    30_000
  )
})

const PATH = process.env["PATH"] ?? ""

describe("Loom as an MCP server over stdio", () => {
  it.live("`src/main.ts --mcp-stdio` serves the tools to an SDK client", () =>
    Effect.gen(function*() {
      const c = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const c = new Client({ name: "test", version: "1.0.0" }, { capabilities: {} })
          await c.connect(
            new StdioClientTransport({
              command: process.execPath,
              args: ["--import", "tsx", "src/main.ts", "--mcp-stdio"],
              env: { PATH, LOOM_DATA_DIR: scratchDir("loom-mcp-stdio-") },
              stderr: "ignore"
            })
          )
          return c
        }),
        (c) => Effect.promise(() => c.close())
      )
      const { tools } = yield* Effect.promise(() => c.listTools())
      assert.includeMembers(tools.map((t) => t.name), ["weather", "text.chunk", "code.run_tests"])
      const tokens = yield* Effect.promise(() =>
        c.callTool({ name: "text.estimate_tokens", arguments: { text: "a b c" } })
      )
      assert.deepStrictEqual(tokens.content, [{ type: "text", text: "3" }])
    }).pipe(Effect.scoped), 60_000)
})
