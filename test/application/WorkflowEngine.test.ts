import { SqliteClient } from "@effect/sql-sqlite-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Fiber, Layer, Schema, Stream } from "effect"
import * as path from "node:path"
import * as Workflow from "../../src/application/Workflow.js"
import { WorkflowEngine } from "../../src/application/WorkflowEngine.js"
import { CheckpointStore } from "../../src/domain/CheckpointStore.js"
import { ToolFailed, ToolNotFound } from "../../src/domain/Errors.js"
import type { WorkflowEvent } from "../../src/domain/Workflow.js"
import { ThreadId } from "../../src/domain/Workflow.js"
import * as SqliteCheckpointStore from "../../src/infrastructure/persistence/SqliteCheckpointStore.js"
import { scratchDir } from "../support/Scratch.js"
import { completions, diamond } from "../support/workflow/Graphs.js"

const scratch = () => scratchDir("loom-wf-")

/** An engine over a fresh SQLite file in its own directory, and that store. */
const withStore = (dir = scratch()) =>
  WorkflowEngine.layer.pipe(Layer.provideMerge(SqliteCheckpointStore.layer(path.join(dir, "loom.db"))))

/** An engine over a fresh in-memory store, and that store. */
const withMemory = () => WorkflowEngine.layer.pipe(Layer.provideMerge(CheckpointStore.layerMemory))

const Counter = Schema.Struct({ n: Schema.Int, path: Schema.Array(Schema.String) })

const counter = (limit: number, maxSteps?: number) =>
  Workflow.make({
    name: "counter",
    state: Counter,
    start: "inc",
    nodes: { inc: (s) => Effect.succeed({ n: s.n + 1, path: [`inc${s.n + 1}`] }) },
    edges: { inc: (s) => (s.n < limit ? "inc" : Workflow.END) },
    reducers: { path: Workflow.append },
    ...(maxSteps === undefined ? {} : { maxSteps })
  })

const collect = (events: Stream.Stream<WorkflowEvent>) => Effect.map(Stream.runCollect(events), Chunk.toReadonlyArray)
const last = (events: ReadonlyArray<WorkflowEvent>) => events[events.length - 1]!

describe("WorkflowEngine", () => {
  it.effect("follows conditional edges until END", () =>
    Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      const final = yield* engine.invoke(yield* counter(3), { n: 0, path: [] })
      assert.deepStrictEqual(final, { n: 3, path: ["inc1", "inc2", "inc3"] })
    }).pipe(Effect.provide(WorkflowEngine.layerMemory)))

  it.effect("fans out to parallel nodes and merges their updates with reducers", () =>
    Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      const State = Schema.Struct({ items: Schema.Array(Schema.String), last: Schema.String })
      const graph = yield* Workflow.make({
        name: "fan",
        state: State,
        start: "split",
        nodes: {
          split: () => Effect.succeed({ last: "split" }),
          left: () => Effect.succeed({ items: ["L"], last: "left" }),
          right: () => Effect.succeed({ items: ["R"], last: "right" }),
          join: (s) => Effect.succeed({ items: [`joined ${s.items.length}`], last: "join" })
        },
        edges: { split: ["left", "right"], left: "join", right: "join" },
        reducers: { items: Workflow.append }
      })
      const events = yield* collect(engine.run(graph, { items: [], last: "" }))
      const final = yield* engine.invoke(graph, { items: [], last: "" })
      assert.deepStrictEqual(final, { items: ["L", "R", "joined 2"], last: "join" })
      // join runs once although both branches lead to it
      assert.strictEqual(events.filter((e) => e._tag === "NodeStarted" && e.node === "join").length, 1)
      const started = events.flatMap((e) => e._tag === "NodeStarted" ? [`${e.step}:${e.node}`] : [])
      assert.deepStrictEqual(started.slice(0, 1), ["0:split"])
      assert.sameMembers(started.slice(1, 3), ["1:left", "1:right"])
      assert.deepStrictEqual(started.slice(3), ["2:join"])
    }).pipe(Effect.provide(WorkflowEngine.layerMemory)))

  it.effect("fails a run past its step limit with StepLimitExceeded", () =>
    Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      const events = yield* collect(engine.run(yield* counter(1000, 5), { n: 0, path: [] }))
      const end = last(events)
      assert.strictEqual(end._tag === "WorkflowFailed" && end.error._tag, "StepLimitExceeded")
      assert.strictEqual(events.filter((e) => e._tag === "NodeStarted").length, 5)
    }).pipe(Effect.provide(WorkflowEngine.layerMemory)))

  it.effect("a failing node fails the run with the node named", () =>
    Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      const graph = yield* Workflow.make({
        name: "broken",
        state: Counter,
        start: "boom",
        nodes: { boom: () => Effect.fail(new ToolFailed({ tool: "x", message: "it broke" })) }
      })
      const error = yield* Effect.flip(engine.invoke(graph, { n: 0, path: [] }))
      assert.deepStrictEqual(
        [error._tag, error._tag === "NodeFailed" && error.node, error.message],
        ["NodeFailed", "boom", "it broke"]
      )
    }).pipe(Effect.provide(WorkflowEngine.layerMemory)))

  it.effect("a graph carries its nodes' error types: a failed run's reason is one of their tags", () =>
    Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      const graph = yield* Workflow.make({
        name: "typed",
        state: Counter,
        start: "a",
        nodes: {
          a: (s) => s.n > 0 ? Effect.fail(new ToolNotFound({ tool: "y" })) : Effect.succeed({ n: 1 }),
          b: () => Effect.fail(new ToolFailed({ tool: "x", message: "it broke" }))
        },
        edges: { a: "b" }
      })
      const error = yield* Effect.flip(engine.invoke(graph, { n: 0, path: [] }))
      // `reason` is typed: assigning it to the tags of the graph's node errors compiles
      const reasons: ReadonlyArray<Workflow.NodeFailure<ToolFailed | ToolNotFound>> = error._tag === "NodeFailed"
        ? [error.reason]
        : []
      assert.deepStrictEqual(reasons, ["ToolFailed"])
    }).pipe(Effect.provide(WorkflowEngine.layerMemory)))

  it.effect("a graph naming a node it does not have is rejected when built", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Workflow.make({
        name: "bad",
        state: Counter,
        start: "a",
        nodes: { a: () => Effect.succeed({}) },
        edges: { a: "nowhere" }
      }))
      assert.deepStrictEqual(error.nodes, ["nowhere"])
    }))

  it.effect("checkpoints every step to SQLite and keeps the run and its events queryable", () =>
    Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      const store = yield* CheckpointStore
      const streamed = yield* collect(engine.run(yield* counter(2), { n: 0, path: [] }, { threadId: "t-1" }))
      const run = yield* store.getRun(ThreadId.make("t-1"))
      assert.deepStrictEqual([run.status, run.workflow, run.step], ["finished", "counter", 2])
      const stored = yield* store.events(ThreadId.make("t-1"))
      assert.deepStrictEqual(stored.map((e) => e.seq), stored.map((_, i) => i + 1))
      assert.deepStrictEqual(stored.map((e) => e.event._tag), streamed.map((e) => e._tag))
      assert.deepStrictEqual(
        streamed.filter((e) => e._tag === "CheckpointSaved").map((e) => e._tag === "CheckpointSaved" && e.step),
        [1, 2]
      )
      assert.deepStrictEqual((yield* store.events(ThreadId.make("t-1"), stored.length - 1)).length, 1)
      assert.deepStrictEqual((yield* store.listRuns).map((r) => r.threadId), ["t-1"])
      const again = yield* Effect.flip(engine.invoke(yield* counter(2), { n: 0, path: [] }, { threadId: "t-1" }))
      assert.strictEqual(again._tag, "RunExists")
      const missing = yield* Effect.flip(engine.resumeToEnd(yield* counter(2), "nope"))
      assert.strictEqual(missing._tag, "RunNotFound")
    }).pipe(Effect.provide(withStore())))

  it.live("an interrupted run resumes from its checkpoint; every node finishes exactly once", () =>
    Effect.gen(function*() {
      const dir = scratch()
      const log = path.join(dir, "log")
      const gate = yield* Deferred.make<void>()
      const graph = yield* diamond(log, Deferred.await(gate))
      const engine = yield* WorkflowEngine
      const store = yield* CheckpointStore
      const cFinished = yield* Deferred.make<void>()
      const first = yield* Effect.fork(
        engine.run(graph, { input: "x", visited: [] }, { threadId: "resume-me" }).pipe(
          Stream.tap((e) =>
            e._tag === "NodeFinished" && e.node === "c" ? Deferred.succeed(cFinished, undefined) : Effect.void
          ),
          Stream.runDrain
        )
      )
      yield* Deferred.await(cFinished)
      yield* Fiber.interrupt(first)
      assert.strictEqual((yield* store.getRun(ThreadId.make("resume-me"))).status, "interrupted")
      assert.deepStrictEqual(completions(log), { a: 1, c: 1 })
      yield* Deferred.succeed(gate, undefined)
      const events = yield* collect(engine.resume(graph, "resume-me"))
      assert.deepStrictEqual(
        events.flatMap((e) => e._tag === "NodeStarted" ? [e.node] : []),
        ["b", "d"],
        "only the unfinished nodes run"
      )
      assert.deepStrictEqual(completions(log), { a: 1, b: 1, c: 1, d: 1 })
      const end = last(events)
      assert.strictEqual(end._tag, "WorkflowFinished")
      const state = end._tag === "WorkflowFinished" ? end.state as { visited: Array<string> } : { visited: [] }
      assert.deepStrictEqual(state.visited, ["a", "b", "c", "d"])
      assert.strictEqual((yield* store.getRun(ThreadId.make("resume-me"))).status, "finished")
      // resuming a finished run reports its final state and runs nothing
      const replay = yield* collect(engine.resume(graph, "resume-me"))
      assert.deepStrictEqual(replay.map((e) => e._tag), ["WorkflowFinished"])
    }).pipe(Effect.provide(withMemory())))

  it.live("corrupt checkpoint data gives a typed CheckpointCorrupt, not a crash", () => {
    const dir = scratch()
    const sqlOnTheSameFile = SqliteClient.layer({ filename: path.join(dir, "loom.db") })
    return Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      const sql = yield* SqlClient.SqlClient
      const graph = yield* counter(3)
      yield* engine.invoke(graph, { n: 0, path: [] }, { threadId: "bad-json" }).pipe(Effect.ignore)
      yield* sql`UPDATE runs SET status = 'interrupted' WHERE thread_id = 'bad-json'`
      yield* sql`UPDATE checkpoints SET state = '{not json' WHERE thread_id = 'bad-json'`
      const broken = yield* Effect.flip(engine.resumeToEnd(graph, "bad-json"))
      assert.strictEqual(broken._tag, "CheckpointCorrupt")
      yield* sql`UPDATE checkpoints SET state = '{"n":"three","path":[]}' WHERE thread_id = 'bad-json'`
      const wrongShape = yield* Effect.flip(engine.resumeToEnd(graph, "bad-json"))
      assert.strictEqual(wrongShape._tag, "CheckpointCorrupt")
      assert.include(wrongShape.message, "n")
    }).pipe(Effect.provide(Layer.merge(withStore(dir), Layer.orDie(sqlOnTheSameFile))))
  })
})
