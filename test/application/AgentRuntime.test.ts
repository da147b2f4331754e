import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Ref, Schema, Stream } from "effect"
import { AgentRuntime } from "../../src/application/AgentRuntime.js"
import type * as Runtime from "../../src/application/AgentRuntime.js"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import type { Agent, AgentEvent } from "../../src/domain/Agent.js"
import type { ChatRequest } from "../../src/domain/Chat.js"
import { ToolFailed } from "../../src/domain/Errors.js"
import { LanguageModel } from "../../src/domain/LanguageModel.js"
import type { Reply } from "../../src/domain/LanguageModel.js"
import * as Tool from "../../src/domain/Tool.js"
import type { ToolDefinition } from "../../src/domain/Tool.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"

const agent = (overrides: Partial<Agent> = {}): Agent => ({
  name: "tester",
  model: "llama3.2",
  systemPrompt: "You answer with tools.",
  tools: ["lookup"],
  ...overrides
})

const lastRole = (request: ChatRequest) => request.messages[request.messages.length - 1]?.role
const toolContents = (request: ChatRequest) => request.messages.filter((m) => m.role === "tool").map((m) => m.content)
/** Echoes the last user message, as the simulator's default script does. */
const echo = (request: ChatRequest): Reply => ({
  content: `echo: ${[...request.messages].reverse().find((m) => m.role === "user")?.content ?? ""}`
})

/** A `lookup` tool that waits until `width` lookups run at once: it only finishes if they run in parallel. */
const barrierLookup = (width: number) =>
  Effect.gen(function*() {
    const running = yield* Ref.make(0)
    const all = yield* Deferred.make<void>()
    return Tool.make({
      name: "lookup",
      description: "looks a key up",
      input: Schema.Struct({ key: Schema.String }),
      output: Schema.Struct({ key: Schema.String, value: Schema.String }),
      handler: ({ key }) =>
        Effect.gen(function*() {
          const now = yield* Ref.updateAndGet(running, (n) => n + 1)
          if (now === width) yield* Deferred.succeed(all, undefined)
          yield* Deferred.await(all).pipe(
            Effect.timeoutFail({
              duration: "5 seconds",
              onTimeout: () => new ToolFailed({ tool: "lookup", message: "ran alone" })
            })
          )
          return { key, value: key.toUpperCase() }
        })
    })
  })

/** What the tests read off the model: how many chat requests it answered, as they read it off the simulator. */
interface Model {
  readonly requests: (route: "chat") => number
}

/** The runtime over an in-memory model playing `script`, with `tools` registered. */
const withAgents = <A, E>(
  script: (request: ChatRequest) => Reply,
  tools: ReadonlyArray<ToolDefinition>,
  body: (runtime: Runtime.Service, sim: Model) => Effect.Effect<A, E>
) =>
  Effect.suspend(() => {
    let chats = 0
    const counted = (request: ChatRequest) => {
      chats++
      return script(request)
    }
    const layer = AgentRuntime.layer.pipe(
      Layer.provide(ToolExecutor.layerIo({})),
      Layer.provide([InMemoryToolRegistry.layer(tools), Timeouts.Timeouts.Default, LanguageModel.layerTest(counted)])
    )
    return Effect.flatMap(AgentRuntime, (runtime) => body(runtime, { requests: () => chats })).pipe(
      Effect.provide(layer)
    )
  })

const tags = (events: ReadonlyArray<AgentEvent>) => events.map((e) => e._tag)

describe("AgentRuntime", () => {
  it.live("runs a turn's three tool calls in parallel, feeds results back in call order, then answers", () =>
    Effect.gen(function*() {
      const lookup = yield* barrierLookup(3)
      const script = (request: ChatRequest): Reply =>
        lastRole(request) === "tool"
          ? { content: `answer from ${toolContents(request).join(" | ")}` }
          : {
            content: "",
            toolCalls: ["a", "b", "c"].map((key) => ({ name: "lookup", arguments: { key } }))
          }
      yield* withAgents(script, [lookup], (runtime) =>
        Effect.gen(function*() {
          const events = yield* runtime.collect(agent(), "look up a, b and c")
          assert.deepStrictEqual(tags(events), [
            "StepStarted",
            "ToolCallsRequested",
            "ToolResult",
            "ToolResult",
            "ToolResult",
            "StepFinished",
            "StepStarted",
            "StepFinished",
            "FinalAnswer"
          ])
          const final = events[events.length - 1]!
          assert.strictEqual(
            final._tag === "FinalAnswer" && final.content,
            "answer from {\"key\":\"a\",\"value\":\"A\"} | {\"key\":\"b\",\"value\":\"B\"} | {\"key\":\"c\",\"value\":\"C\"}"
          )
        }))
    }))

  it.live("an unknown tool and undecodable arguments go back to the model, and the run recovers", () =>
    Effect.gen(function*() {
      const lookup = yield* barrierLookup(1)
      const script = (request: ChatRequest): Reply =>
        lastRole(request) === "tool"
          ? { content: `recovered after ${toolContents(request).join(" | ")}` }
          : {
            content: "",
            toolCalls: [
              { name: "no_such_tool", arguments: {} },
              { name: "lookup", arguments: { key: 5 } },
              { name: "lookup", arguments: { key: "ok" } }
            ]
          }
      yield* withAgents(script, [lookup], (runtime, sim) =>
        Effect.gen(function*() {
          const answer = yield* runtime.answer(agent(), "try things")
          assert.include(answer, "ToolNotFound")
          assert.include(answer, "InvalidToolInput")
          assert.include(answer, "key")
          assert.include(answer, "\"value\":\"OK\"")
          assert.strictEqual(sim.requests("chat"), 2)
        }))
    }))

  it.live("stops at maxSteps with a typed MaxStepsExceeded", () =>
    Effect.gen(function*() {
      const lookup = yield* barrierLookup(1)
      const script = (): Reply => ({ content: "", toolCalls: [{ name: "lookup", arguments: { key: "again" } }] })
      yield* withAgents(script, [lookup], (runtime, sim) =>
        Effect.gen(function*() {
          const events = yield* runtime.collect(agent({ maxSteps: 3 }), "loop forever")
          assert.strictEqual(events.filter((e) => e._tag === "StepStarted").length, 3)
          const last = events[events.length - 1]!
          assert.strictEqual(last._tag === "Failed" && last.error._tag, "MaxStepsExceeded")
          assert.strictEqual(sim.requests("chat"), 3)
          const error = yield* Effect.flip(runtime.answer(agent({ maxSteps: 2 }), "loop forever"))
          assert.strictEqual(error._tag, "MaxStepsExceeded")
        }))
    }))

  it.live("interrupting the consumer mid-run interrupts the running tools", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const hang = Tool.make({
        name: "lookup",
        description: "never finishes",
        input: Schema.Struct({ key: Schema.String }),
        output: Schema.String,
        handler: () =>
          Deferred.succeed(started, undefined).pipe(
            Effect.zipRight(Effect.never),
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
          )
      })
      const script = (): Reply => ({ content: "", toolCalls: [{ name: "lookup", arguments: { key: "x" } }] })
      yield* withAgents(script, [hang], (runtime) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(Stream.runDrain(runtime.run(agent(), "hang")))
          yield* Deferred.await(started)
          yield* Fiber.interrupt(fiber)
          yield* Deferred.await(interrupted).pipe(Effect.timeout("2 seconds"))
        }))
    }))

  it.live("a streaming agent emits the model's text as tokens", () =>
    Effect.gen(function*() {
      const lookup = yield* barrierLookup(1)
      yield* withAgents(echo, [lookup], (runtime) =>
        Effect.gen(function*() {
          const events = yield* runtime.collect(agent({ stream: true }), "stream these words")
          const tokens = events.flatMap((e) => e._tag === "LlmToken" ? [e.content] : [])
          assert.isAbove(tokens.length, 1)
          const final = events[events.length - 1]!
          assert.strictEqual(final._tag === "FinalAnswer" && final.content, tokens.join(""))
          assert.strictEqual(tokens.join(""), "echo: stream these words")
        }))
    }))
})
