import { SqliteClient } from "@effect/sql-sqlite-node"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, ConfigProvider, Effect, Either, Layer, Schema, Stream } from "effect"
import * as path from "node:path"
import { AgentRuntime } from "../../src/application/AgentRuntime.js"
import * as Runtime from "../../src/application/AgentRuntime.js"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import * as Workflow from "../../src/application/Workflow.js"
import { WorkflowEngine } from "../../src/application/WorkflowEngine.js"
import type { Agent, AgentEvent } from "../../src/domain/Agent.js"
import { ChatMessage, ChatRequest } from "../../src/domain/Chat.js"
import { CheckpointStore } from "../../src/domain/CheckpointStore.js"
import { ToolFailed } from "../../src/domain/Errors.js"
import { LanguageModel } from "../../src/domain/LanguageModel.js"
import type { Reply } from "../../src/domain/LanguageModel.js"
import * as PriceTable from "../../src/domain/PriceTable.js"
import * as Tool from "../../src/domain/Tool.js"
import type { Usage } from "../../src/domain/Usage.js"
import { zero } from "../../src/domain/Usage.js"
import * as UsageMeter from "../../src/domain/UsageMeter.js"
import type { WorkflowEvent } from "../../src/domain/Workflow.js"
import { ThreadId } from "../../src/domain/Workflow.js"
import * as SqliteCheckpointStore from "../../src/infrastructure/persistence/SqliteCheckpointStore.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"
import { scratchDir } from "../support/Scratch.js"

/*
 * The in-memory model counts a request's words as its prompt tokens and a reply's words
 * (plus one per tool call) as its completion tokens, so every number below can be read
 * off the conversation.
 */

const agent: Agent = {
  name: "tester",
  model: "llama3.2",
  systemPrompt: "You answer with tools.", // 4 words
  tools: ["lookup"]
}

const lookup = Tool.make({
  name: "lookup",
  description: "looks a key up",
  input: Schema.Struct({ key: Schema.String }),
  output: Schema.Struct({ key: Schema.String, value: Schema.String }),
  handler: ({ key }) => Effect.succeed({ key, value: key.toUpperCase() })
})

/**
 * The agent's two turns: a lookup (prompt 4 + 3 words, completion 1 tool call), then
 * "it is sunny" (prompt 4 + 3 + 0 + 1, the tool result being one JSON word; completion 3).
 * Any other request (not the agent's) is answered "a short summary".
 */
const script = (request: ChatRequest): Reply => {
  if (request.messages[0]?.content !== agent.systemPrompt) return { content: "a short summary" }
  return request.messages.some((m) => m.role === "tool")
    ? { content: "it is sunny" }
    : { content: "", toolCalls: [{ name: "lookup", arguments: { key: "a" } }] }
}

const steps = [{ calls: 1, prompt: 7, completion: 1 }, { calls: 1, prompt: 8, completion: 3 }]

const counts = (usage: Usage | undefined) =>
  usage === undefined ? undefined : { calls: usage.calls, prompt: usage.prompt, completion: usage.completion }

/** USD per million tokens: 1 prompt, 2 completion. */
const prices = "llama3.2=1/2"
const costOf = (c: { readonly prompt: number; readonly completion: number }) => (c.prompt + 2 * c.completion) / 1e6

const tools = Layer.mergeAll(
  ToolExecutor.layerIo({}).pipe(Layer.provide([InMemoryToolRegistry.layer([lookup]), Timeouts.Timeouts.Default])),
  InMemoryToolRegistry.layer([lookup])
)

describe("usage of an agent run", () => {
  it.effect("each StepFinished carries its turn's tokens and cost, the FinalAnswer the run's total", () =>
    Effect.gen(function*() {
      const runtime = yield* AgentRuntime
      const events = yield* runtime.collect(agent, "look up a")
      const finished = events.filter((e): e is Extract<AgentEvent, { _tag: "StepFinished" }> =>
        e._tag === "StepFinished"
      )
      assert.deepStrictEqual(finished.map((e) => counts(e.usage)), steps)
      finished.forEach((e, i) => assert.closeTo(e.usage!.costUsd!, costOf(steps[i]!), 1e-12))
      const final = events[events.length - 1]!
      assert.strictEqual(final._tag, "FinalAnswer")
      const total = final._tag === "FinalAnswer" ? final.usage : undefined
      assert.deepStrictEqual(counts(total), { calls: 2, prompt: 15, completion: 4 })
      assert.closeTo(total!.costUsd!, costOf({ prompt: 15, completion: 4 }), 1e-12)
    }).pipe(
      Effect.provide(
        Layer.effect(AgentRuntime, Runtime.make).pipe(
          Layer.provide([
            tools,
            LanguageModel.layerTest(script),
            PriceTable.Prices.layer(Either.getOrThrow(PriceTable.parse(prices)))
          ])
        )
      )
    ))
})

const UsageState = Schema.Struct({ summary: Schema.String, answer: Schema.String, done: Schema.Boolean })

/** Summary and agent in parallel (one metered chat; the agent's two), then a node that calls no model. */
const graph = Effect.gen(function*() {
  const llm = UsageMeter.metered(yield* LanguageModel)
  const runtime = yield* AgentRuntime
  return yield* Workflow.make({
    name: "usage",
    state: UsageState,
    start: ["summarize", "agent"],
    nodes: {
      summarize: () =>
        Effect.map(
          llm.chat(
            new ChatRequest({
              model: "llama3.2",
              messages: [
                new ChatMessage({ role: "system", content: "Summarize." }),
                new ChatMessage({ role: "user", content: "the text" })
              ]
            })
          ),
          (response) => ({ summary: response.message.content })
        ),
      agent: () => Effect.map(runtime.answer(agent, "look up a"), (answer) => ({ answer })),
      finish: () => Effect.succeed({ done: true })
    },
    edges: { summarize: "finish", agent: "finish" }
  })
})

/** The summary's chat (prompt 1 + 2, completion 3) and the agent's two. */
const total = { calls: 3, prompt: 18, completion: 7 }

const collect = (events: Stream.Stream<WorkflowEvent>) => Effect.map(Stream.runCollect(events), Chunk.toReadonlyArray)

const scratch = () => path.join(scratchDir("loom-usage-"), "loom.db")

/** The engine and runtime as the service builds them, prices from LOOM_PRICES, over `store`. */
const services = (store: Layer.Layer<CheckpointStore>) =>
  Layer.mergeAll(WorkflowEngine.layer, AgentRuntime.layer).pipe(
    Layer.provide(tools),
    Layer.provideMerge(LanguageModel.layerTest(script)),
    Layer.provideMerge(store)
  )

const withPrices = Effect.withConfigProvider(ConfigProvider.fromJson({ LOOM_PRICES: prices }))

const stores: ReadonlyArray<readonly [string, () => Layer.Layer<CheckpointStore>]> = [
  ["in memory", () => CheckpointStore.layerMemory],
  ["SQLite", () => SqliteCheckpointStore.layer(scratch())]
]

describe("usage of a workflow run", () => {
  for (const [name, store] of stores) {
    it.effect(`nodes carry their own usage, nested agent runs included; the run's total is kept (${name})`, () =>
      Effect.gen(function*() {
        const engine = yield* WorkflowEngine
        const events = yield* collect(engine.run(yield* graph, { summary: "", answer: "", done: false }, {
          threadId: "u-1"
        }))
        const byNode = Object.fromEntries(
          events.flatMap((e) => e._tag === "NodeFinished" ? [[e.node, counts(e.usage)] as const] : [])
        )
        assert.deepStrictEqual(byNode, {
          summarize: { calls: 1, prompt: 3, completion: 3 },
          agent: { calls: 2, prompt: 15, completion: 4 },
          finish: undefined
        })
        const end = events[events.length - 1]!
        const usage = end._tag === "WorkflowFinished" ? end.usage : undefined
        assert.deepStrictEqual(counts(usage), total)
        assert.closeTo(usage!.costUsd!, costOf(total), 1e-12)
        const record = yield* Effect.flatMap(CheckpointStore, (s) => s.getRun(ThreadId.make("u-1")))
        assert.deepStrictEqual(record.usage, usage)
        const replay = yield* collect(engine.resume(yield* graph, "u-1"))
        assert.deepStrictEqual(replay.map((e) => e._tag === "WorkflowFinished" && counts(e.usage)), [total])
      }).pipe(Effect.provide(services(store())), withPrices))
  }

  it.effect("the total is read back from the SQLite file by a store opened afresh", () =>
    Effect.gen(function*() {
      const file = scratch()
      const finished = yield* Effect.flatMap(
        WorkflowEngine,
        (engine) =>
          Effect.flatMap(graph, (g) => engine.invoke(g, { summary: "", answer: "", done: false }, { threadId: "u-2" }))
      ).pipe(Effect.provide(services(SqliteCheckpointStore.layer(file))), withPrices)
      assert.isTrue(finished.done)
      const record = yield* Effect.flatMap(CheckpointStore, (s) => s.getRun(ThreadId.make("u-2"))).pipe(
        Effect.provide(SqliteCheckpointStore.layer(file))
      )
      assert.deepStrictEqual(counts(record.usage), total)
      assert.closeTo(record.usage.costUsd!, costOf(total), 1e-12)
    }))

  it.effect("a database from before usage was kept is migrated: its runs read back with zero usage", () =>
    Effect.gen(function*() {
      const file = scratch()
      const first = Effect.map(SqliteCheckpointStore.migrations, (all) => all.filter(([id]) => id === 1))
      yield* Effect.gen(function*() {
        yield* Migrator.make({})({ loader: first })
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO runs ${
          sql.insert({
            thread_id: "old",
            workflow: "coding",
            status: "finished",
            step: 3,
            error: null,
            created_at: 1,
            updated_at: 2
          })
        }`
      }).pipe(Effect.provide(SqliteClient.layer({ filename: file })))
      const record = yield* Effect.flatMap(CheckpointStore, (s) => s.getRun(ThreadId.make("old"))).pipe(
        Effect.provide(SqliteCheckpointStore.layer(file))
      )
      assert.deepStrictEqual([record.status, record.usage], ["finished", zero])
    }))

  it.effect("a node that fails after calling the model still adds what it spent", () =>
    Effect.gen(function*() {
      const llm = UsageMeter.metered(yield* LanguageModel)
      const failing = yield* Workflow.make({
        name: "failing",
        state: UsageState,
        start: "summarize",
        nodes: {
          summarize: () =>
            llm.chat(
              new ChatRequest({ model: "llama3.2", messages: [new ChatMessage({ role: "user", content: "the text" })] })
            ).pipe(Effect.zipRight(Effect.fail(new ToolFailed({ tool: "x", message: "no" }))))
        }
      })
      const events = yield* collect((yield* WorkflowEngine).run(failing, { summary: "", answer: "", done: false }, {
        threadId: "u-3"
      }))
      const end = events[events.length - 1]!
      const expected = { calls: 1, prompt: 2, completion: 3 }
      assert.deepStrictEqual(end._tag === "WorkflowFailed" && counts(end.usage), expected)
      const record = yield* Effect.flatMap(CheckpointStore, (s) => s.getRun(ThreadId.make("u-3")))
      assert.deepStrictEqual([record.status, counts(record.usage)], ["failed", expected])
    }).pipe(Effect.provide(services(CheckpointStore.layerMemory)), withPrices))
})
