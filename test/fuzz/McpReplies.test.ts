/**
 * Boundary 4, MCP servers' replies: Loom's McpConnector on one kept connection to a
 * hostile MCP server that answers `initialize` properly, then `tools/list` and
 * `tools/call` with generated replies (results of every shape, JSON-RPC errors, wrong
 * types, nulls, huge strings, batches, SSE, other media types and statuses, a wrong
 * id). Listing never fails: a server whose reply is bad is reported unavailable. A call
 * ends with its output or a typed ToolHandlerError. Never a defect or a hang.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Cause, Clock, Context, Data, Duration, Effect, Exit, Layer, Option, Schedule, Schema } from "effect"
import * as fc from "fast-check"
import { HttpServer } from "../../src/infrastructure/mcp/McpConfig.js"
import { McpConnector } from "../../src/infrastructure/mcp/McpConnector.js"
import * as McpConnectorLive from "../../src/infrastructure/mcp/McpConnector.js"
import { ToolOutput } from "../../src/infrastructure/mcp/McpWire.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as HostileMcp from "../support/HostileMcp.js"
import * as Tally from "../support/Tally.js"

const tally = Tally.make("mcp-replies")

class Hostile extends Context.Tag("test/HostileMcp")<Hostile, HostileMcp.HostileMcp>() {}

const server = "hostile"

/** Short deadlines (the server is local; a reply that never comes costs 300 ms); a breaker that never opens, so every case asks. */
const Connector = Layer.unwrapEffect(Effect.map(Hostile, (hostile) =>
  McpConnector.layer({
    servers: [new HttpServer({ name: server, url: hostile.url })],
    breaker: { consecutiveFailures: 1_000_000 },
    reconnect: Schedule.spaced("50 millis")
  }))).pipe(
    Layer.provide(Timeouts.Timeouts.layer({
      "mcp.connect": Duration.seconds(5),
      "mcp.list": Duration.millis(300),
      "mcp.call": Duration.millis(300)
    }))
  )

const Env = Connector.pipe(Layer.provideMerge(Layer.scoped(Hostile, HostileMcp.make)))

/** A case that outlived every deadline. */
class Hang extends Data.TaggedError("Hang")<{ readonly what: string }> {}

const bounded = <A, E, R>(self: Effect.Effect<A, E, R>, what: string) =>
  self.pipe(
    // disconnected: a call that cannot even be interrupted must fail the case, not hold the suite
    Effect.disconnect,
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Hang({ what }) }),
    Effect.exit
  )

/**
 * A clock `offset` ms ahead of the live one (its sleeps stay live): the connector caches a
 * listing, and remembers a failed one for a second, so each list case runs an hour later.
 */
const ahead = (clock: Clock.Clock, offset: number): Clock.Clock => ({
  [Clock.ClockTypeId]: Clock.ClockTypeId,
  unsafeCurrentTimeMillis: () => clock.unsafeCurrentTimeMillis() + offset,
  currentTimeMillis: Effect.sync(() => clock.unsafeCurrentTimeMillis() + offset),
  unsafeCurrentTimeNanos: () => clock.unsafeCurrentTimeNanos() + BigInt(offset) * 1_000_000n,
  currentTimeNanos: Effect.sync(() => clock.unsafeCurrentTimeNanos() + BigInt(offset) * 1_000_000n),
  sleep: (duration) => clock.sleep(duration)
})

let hours = 0
const later = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.clock, (clock) => Effect.withClock(self, ahead(clock, ++hours * 3_600_000)))

// --- replies ------------------------------------------------------------------------------

const anyJson = fc.jsonValue({ maxDepth: 4 })
/** Mostly `valid`: the SDK checks every field, and one bad one anywhere fails the whole reply. */
const mostly = <A>(valid: fc.Arbitrary<A>) =>
  fc.oneof({ weight: 25, arbitrary: valid }, { weight: 1, arbitrary: anyJson })

const jsonSchema = fc.oneof(
  { weight: 4, arbitrary: fc.constant<unknown>({ type: "object" }) },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.oneof({ weight: 6, arbitrary: fc.constant("object") }, fc.constantFrom("string", "array", "number")),
      properties: mostly(fc.dictionary(
        fc.string({ maxLength: 6 }),
        fc.oneof(
          fc.record({ type: fc.constantFrom("string", "integer", "boolean", "array", "object", "null", "nope") }),
          fc.record({ enum: fc.array(anyJson, { maxLength: 3 }) }),
          fc.record({ const: anyJson }),
          fc.record({ anyOf: fc.array(fc.record({ type: fc.constantFrom("string", "number") }), { maxLength: 2 }) })
        ),
        { maxKeys: 3 }
      )),
      required: mostly(fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 })),
      items: anyJson,
      description: anyJson
    }, { requiredKeys: ["type"] })
  },
  { weight: 1, arbitrary: anyJson }
)

const toolName = fc.oneof(
  { weight: 4, arbitrary: fc.constant(HostileMcp.tool) },
  { weight: 2, arbitrary: fc.constantFrom("ok_tool", "a.b", "", " ", "x".repeat(200), "naïve", "../x") },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) }
)

/** Fields a tool may also have, mostly none: the SDK checks them, and one bad one fails the whole list. */
const toolExtras = fc.oneof(
  { weight: 6, arbitrary: fc.constant({}) },
  {
    weight: 1,
    arbitrary: fc.record({
      title: fc.string({ maxLength: 10 }),
      outputSchema: fc.oneof(jsonSchema, anyJson),
      annotations: anyJson,
      execution: fc.record({ taskSupport: fc.constantFrom("required", "optional", "forbidden", "nope") })
    }, { requiredKeys: [] })
  }
)

const toolInfo = fc.tuple(
  fc.record({
    name: mostly(toolName),
    description: mostly(fc.string({ maxLength: 40 })),
    inputSchema: mostly(jsonSchema)
  }, { requiredKeys: ["name", "inputSchema"] }),
  toolExtras
).map(([info, extras]) => ({ ...info, ...extras }))

const listResult = fc.record({
  tools: mostly(fc.array(toolInfo, { maxLength: 4 })),
  // undefined leaves the key out of the JSON: mostly one page
  nextCursor: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, mostly(fc.string({ maxLength: 6 })))
}, { requiredKeys: ["tools"] })

const contentItem = fc.oneof(
  { weight: 20, arbitrary: fc.record({ type: fc.constant("text"), text: mostly(fc.string({ maxLength: 40 })) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constantFrom("image", "audio"),
      data: mostly(fc.base64String({ maxLength: 40 })),
      mimeType: mostly(fc.constantFrom("image/png", "audio/wav", ""))
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constantFrom("resource", "resource_link"), resource: anyJson, uri: anyJson })
  },
  { weight: 1, arbitrary: fc.record({ type: anyJson, text: anyJson }) },
  { weight: 1, arbitrary: anyJson }
)

const callResult = fc.record({
  content: mostly(fc.array(contentItem, { maxLength: 3 })),
  structuredContent: mostly(fc.dictionary(fc.string({ maxLength: 6 }), anyJson, { maxKeys: 3 })),
  isError: mostly(fc.boolean()),
  _meta: anyJson
}, { requiredKeys: ["content"] })

/** What a server may answer: the shaped result, any result, an error, or not JSON-RPC at all. */
const answer = (shaped: fc.Arbitrary<unknown>, huge: unknown): fc.Arbitrary<HostileMcp.Answer> =>
  fc.oneof(
    { weight: 40, arbitrary: shaped.map((value): HostileMcp.Answer => (id) => HostileMcp.result(id, value)) },
    { weight: 3, arbitrary: anyJson.map((value): HostileMcp.Answer => (id) => HostileMcp.result(id, value)) },
    {
      weight: 3,
      arbitrary: fc.record({ code: mostly(fc.integer()), message: mostly(fc.string()), data: anyJson }, {
        requiredKeys: []
      }).map((error): HostileMcp.Answer => (id) => HostileMcp.json({ jsonrpc: "2.0", id, error }))
    },
    { weight: 1, arbitrary: fc.constant<HostileMcp.Answer>((id) => HostileMcp.result(id, huge)) },
    { weight: 1, arbitrary: fc.constant<HostileMcp.Answer>((id) => HostileMcp.result(id, null)) },
    {
      weight: 1,
      arbitrary: shaped.map((value): HostileMcp.Answer => (id) =>
        HostileMcp.json({ jsonrpc: "1.0", id, result: value })
      )
    },
    {
      weight: 1,
      arbitrary: fc.tuple(shaped, anyJson).map(([value, junk]): HostileMcp.Answer => (id) =>
        HostileMcp.json([{ jsonrpc: "2.0", id, result: value }, junk])
      )
    },
    {
      // the same result as Server-Sent Events, sometimes with a garbled data line
      weight: 2,
      arbitrary: fc.tuple(shaped, fc.boolean()).map(([value, garble]): HostileMcp.Answer => (id) => ({
        status: 200,
        headers: { "content-type": "text/event-stream" },
        body: `event: message\ndata: ${
          garble ? "{not json" : JSON.stringify({ jsonrpc: "2.0", id, result: value })
        }\n\n`
      }))
    },
    {
      weight: 2,
      arbitrary: fc.record({
        status: fc.constantFrom(200, 201, 400, 404, 500, 503),
        type: fc.constantFrom("application/json", "text/plain", "text/html", "application/octet-stream", ""),
        body: fc.oneof(
          fc.string({ maxLength: 60 }),
          fc.uint8Array({ maxLength: 60 }),
          anyJson.map((v) => JSON.stringify(v))
        )
      }).map(({ body, status, type }): HostileMcp.Answer => () => ({
        status,
        headers: type === "" ? {} : { "content-type": type },
        body
      }))
    },
    {
      // a reply for another request, or a response that never ends: the caller's deadline ends the wait
      weight: 1,
      arbitrary: fc.constantFrom<HostileMcp.Answer>(
        (id) => HostileMcp.result(typeof id === "number" ? id + 1_000 : "other", {}),
        () => ({ status: 200, headers: { "content-type": "text/event-stream" }, body: "", end: "hang" })
      )
    }
  )

const hugeList = {
  tools: [{ name: HostileMcp.tool, description: "x".repeat(1_000_000), inputSchema: { type: "object" } }]
}
const hugeCall = { content: [{ type: "text", text: "x".repeat(1_000_000) }] }

/** A list case: the first page's answer, and maybe the next page's (a cursor asks for one). */
const listCase = fc.tuple(answer(listResult, hugeList), fc.option(answer(listResult, hugeList), { freq: 3 }))
const callCase = fc.tuple(answer(callResult, hugeCall), fc.dictionary(fc.string({ maxLength: 6 }), anyJson))

// --- the properties -------------------------------------------------------------------------

const handlerErrors = new Set(["ToolFailed", "Timeout", "CircuitOpen", "QueueFull", "Shutdown"])
const isToolOutput = Schema.is(ToolOutput)

const tagOf = (cause: Cause.Cause<unknown>) => {
  const error = Option.getOrUndefined(Cause.failureOption(cause))
  return typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "untagged"
}

/** Waits for the connector's connection to the server. */
const connectedOf = (connector: McpConnector["Type"]) =>
  connector.status.pipe(
    Effect.filterOrFail((all) => all.every((s) => s.status === "connected"), () => "not connected"),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("10 seconds"))),
    Effect.orDie
  )

const connected = Effect.flatMap(McpConnector, connectedOf)

layer(Env, { excludeTestServices: true, timeout: "30 seconds" })("fuzzed MCP replies", (it) => {
  it.effect.prop(
    "listing reports a server that answers nonsense as unavailable, never fails, dies or hangs",
    [listCase],
    ([[first, second]]) =>
      Effect.gen(function*() {
        yield* connected
        const hostile = yield* Hostile
        const connector = yield* McpConnector
        hostile.clear()
        hostile.next("tools/list", first)
        if (second !== null) hostile.next("tools/list", second)
        const exit = yield* bounded(later(connector.list), "list")
        assert.isTrue(Exit.isSuccess(exit), `list failed: ${Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""}`)
        if (Exit.isFailure(exit)) return
        const { tools, unavailable } = exit.value
        for (const tool of tools) assert.isTrue(tool.name.startsWith(`${server}.`), tool.name)
        for (const down of unavailable) {
          assert.strictEqual(down.server, server)
          assert.isString(down.message)
        }
        assert.isTrue(unavailable.length === 0 || tools.length === 0, "a server is listed or unavailable, not both")
        tally.record(
          unavailable.length > 0 ? "list: unavailable reported" : `list: ${Math.min(tools.length, 3)}+ tools`
        )
      }),
    { timeout: 240_000, fastCheck: { numRuns: 600 } }
  )

  it.effect.prop(
    "a call ends with its output or a typed ToolHandlerError, never a defect or a hang",
    [callCase],
    ([[reply, args]]) =>
      Effect.gen(function*() {
        yield* connected
        const hostile = yield* Hostile
        const connector = yield* McpConnector
        hostile.clear()
        // a healthy listing, cached for the calls (later than every list case's)
        const listed = yield* later(connector.list)
        assert.deepStrictEqual(listed.unavailable, [])
        const tool = yield* connector.get(`${server}.${HostileMcp.tool}`)
        if (tool.kind !== "io") return assert.fail("an MCP tool is an io tool")
        hostile.next("tools/call", reply)
        const input = yield* Schema.decodeUnknown(tool.input)(args).pipe(Effect.orDie)
        const exit = yield* bounded(tool.handler(input), "call")
        if (Exit.isSuccess(exit)) {
          assert.isTrue(isToolOutput(exit.value), JSON.stringify(exit.value).slice(0, 300))
          tally.record("call: output")
          return
        }
        assert.isFalse(Cause.isDie(exit.cause), `a defect: ${Cause.pretty(exit.cause).slice(0, 600)}`)
        const tag = tagOf(exit.cause)
        assert.isTrue(handlerErrors.has(tag), `not a ToolHandlerError: ${Cause.pretty(exit.cause).slice(0, 400)}`)
        tally.record(`call: ${tag}`)
      }),
    { timeout: 240_000, fastCheck: { numRuns: 600 } }
  )

  it.effect("after all that, the connection still lists and calls as a healthy server's", () =>
    Effect.gen(function*() {
      yield* connected
      const hostile = yield* Hostile
      const connector = yield* McpConnector
      hostile.clear()
      const listed = yield* later(connector.list)
      assert.deepStrictEqual(listed.tools.map((tool) => tool.name), [`${server}.${HostileMcp.tool}`])
      const tool = yield* connector.get(`${server}.${HostileMcp.tool}`)
      if (tool.kind !== "io") return assert.fail("an MCP tool is an io tool")
      const output = yield* tool.handler({})
      assert.deepStrictEqual(output, { content: [{ type: "text", text: "ok" }] })
      console.log(`fuzz mcp-replies: ${hostile.sessions()} session(s) over the run (1 = never reconnected)`)
    }))
})

/**
 * A defect the fuzzer found in src/infrastructure/mcp (not this suite's to fix), kept as
 * an expected failure on a connection of its own. When it is fixed the test fails: make
 * it a plain test (and let the arbitraries nest schemas deep).
 */
describe("known MCP connector defects", () => {
  it.scopedLive.fails(
    "a tool whose inputSchema nests 5,000 levels deep makes list die: JsonSchemaValidator.fromJsonSchema recurses per level (RangeError)",
    () =>
      Effect.gen(function*() {
        const hostile = yield* HostileMcp.make
        const connector = yield* McpConnectorLive.make({
          servers: [new HttpServer({ name: server, url: hostile.url })]
        })
          .pipe(
            Effect.provide(Timeouts.Timeouts.Default)
          )
        yield* connectedOf(connector)
        const depth = 5_000
        // written out: JSON.stringify itself overflows on a value this deep
        const schema = "{\"type\":\"array\",\"items\":".repeat(depth) + "{\"type\":\"string\"}" + "}".repeat(depth)
        hostile.next("tools/list", (id) => ({
          status: 200,
          headers: { "content-type": "application/json" },
          body: `{"jsonrpc":"2.0","id":${
            JSON.stringify(id)
          },"result":{"tools":[{"name":"deep","inputSchema":${`{"type":"object","properties":{"a":${schema}}}`}}]}}`
        }))
        const exit = yield* Effect.exit(connector.list)
        assert.isFalse(Exit.isFailure(exit) && Cause.isDie(exit.cause), "list died")
      })
  )
})
