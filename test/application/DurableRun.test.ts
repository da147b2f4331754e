/**
 * A Loom run as the body of an @effect/workflow execution (`DurableRun.activities`):
 * each node, model call and tool call is an Activity, so when the engine replays the
 * body from the top (it does after every suspension: a gate, a resume), finished work
 * comes back from the engine's storage instead of running again. Each body execution
 * runs the graph under a new Loom thread id, so Loom's own checkpoints cannot be what
 * skips the work: only the engine's memo can.
 *
 * A node is cut off mid-way by a crash: a runner of the cluster goes down in the middle
 * of it and a second one over the same message storage picks the execution up. (Cutting
 * it off with `Workflow.SuspendOnFailure` instead does not work today: a nested unit that
 * suspends waits for its own parent unit to end, and a node that suspends leaves Loom's
 * run stream waiting for an event that never comes.)
 */
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import * as MessageStorage from "@effect/cluster/MessageStorage"
import * as RunnerHealth from "@effect/cluster/RunnerHealth"
import * as Runners from "@effect/cluster/Runners"
import * as RunnerStorage from "@effect/cluster/RunnerStorage"
import * as Sharding from "@effect/cluster/Sharding"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as TestRunner from "@effect/cluster/TestRunner"
import { assert, describe, it } from "@effect/vitest"
import * as DurableDeferred from "@effect/workflow/DurableDeferred"
import * as Workflow from "@effect/workflow/Workflow"
import * as DurableEngine from "@effect/workflow/WorkflowEngine"
import type { Duration } from "effect"
import { Deferred, Effect, Exit, Fiber, Layer, Schedule, Schema, TestClock } from "effect"
import { AgentRuntime } from "../../src/application/AgentRuntime.js"
import * as Durability from "../../src/application/Durability.js"
import * as DurableRun from "../../src/application/DurableRun.js"
import { ToolExecutor } from "../../src/application/ToolExecutor.js"
import * as Graph from "../../src/application/Workflow.js"
import { WorkflowEngine } from "../../src/application/WorkflowEngine.js"
import type { ChatRequest } from "../../src/domain/Chat.js"
import { CheckpointStore } from "../../src/domain/CheckpointStore.js"
import type { LlmError, Reply } from "../../src/domain/LanguageModel.js"
import { LanguageModel } from "../../src/domain/LanguageModel.js"
import * as Tool from "../../src/domain/Tool.js"
import * as Timeouts from "../../src/infrastructure/resilience/Timeouts.js"
import * as InMemoryToolRegistry from "../../src/infrastructure/tools/InMemoryToolRegistry.js"

const State = Schema.Struct({ visited: Schema.Array(Schema.String), answer: Schema.String })
type State = typeof State.Type

/** What ran, counted outside the engine: code in an Activity counts once, code outside it on every replay. */
interface Probe {
  /** Executions of each graph node. */
  readonly nodes: Map<string, number>
  /** Executions of the `count` tool, by the key it was called with. */
  readonly tools: Map<string, number>
  /** Model calls, by turn. */
  readonly turns: Map<number, number>
  /** The final state of each body execution's Loom run, in order. */
  readonly finals: Array<State>
  /** Body executions (the first run, then each replay). */
  bodies: number
  /** Whether the durability the nodes saw was the engine's. */
  readonly durable: Array<boolean>
}

const makeProbe = (): Probe => ({
  nodes: new Map(),
  tools: new Map(),
  turns: new Map(),
  finals: [],
  bodies: 0,
  durable: []
})

const tally = <K>(counts: Map<K, number>, key: K) => counts.set(key, (counts.get(key) ?? 0) + 1)

const agent = { name: "counter", model: "llama3.2", systemPrompt: "You count with tools.", tools: ["count"] }

/** Turn 1 asks for two `count` calls, turn 2 (after the tool results) answers; `turn2` may cut turn 2 off. */
const script = (probe: Probe, turn2: (call: number) => Effect.Effect<Reply, LlmError> = () => answer) =>
(
  request: ChatRequest
): Effect.Effect<Reply, LlmError> => {
  const turn = request.messages.some((m) => m.role === "tool") ? 2 : 1
  tally(probe.turns, turn)
  return turn === 1
    ? Effect.succeed({
      content: "",
      toolCalls: [{ name: "count", arguments: { key: "x" } }, { name: "count", arguments: { key: "y" } }]
    })
    : turn2(probe.turns.get(2)!)
}
const answer = Effect.succeed<Reply>({ content: "counted x and y" })

/** The agent runtime over the scripted model, with a `count` tool that counts its executions. */
const agents = (probe: Probe, model: (request: ChatRequest) => Effect.Effect<Reply, LlmError>) => {
  const count = Tool.make({
    name: "count",
    description: "counts a key",
    input: Schema.Struct({ key: Schema.String }),
    output: Schema.String,
    handler: ({ key }) => Effect.sync(() => (tally(probe.tools, key), key))
  })
  return AgentRuntime.layer.pipe(
    Layer.provide(ToolExecutor.layerIo({})),
    Layer.provide([InMemoryToolRegistry.layer([count]), Timeouts.Timeouts.Default, LanguageModel.layerTest(model)])
  )
}

/** Loom's engine over a store in memory (as `WorkflowEngine.layerMemory`), and that store. */
const loom = WorkflowEngine.layer.pipe(Layer.provideMerge(CheckpointStore.layerMemory))

/** A fan-out of three nodes that nap for `nap`, then a node running the agent. */
const graph = (probe: Probe, runtime: AgentRuntime["Type"], nap: Duration.DurationInput) => {
  const fan = (name: string) => () =>
    Effect.gen(function*() {
      probe.durable.push((yield* Durability.Durability).durable)
      tally(probe.nodes, name)
      yield* Effect.sleep(nap)
      return { visited: [name] }
    })
  return Graph.make({
    name: "fan-then-agent",
    state: State,
    start: ["a", "b", "c"],
    nodes: {
      a: fan("a"),
      b: fan("b"),
      c: fan("c"),
      agent: () =>
        Effect.gen(function*() {
          tally(probe.nodes, "agent")
          const content = yield* runtime.answer(agent, "count x and y")
          return { visited: ["agent"], answer: content }
        })
    },
    edges: { a: "agent", b: "agent", c: "agent" },
    reducers: { visited: Graph.append }
  }).pipe(Effect.orDie)
}

const initial: State = { visited: [], answer: "" }

const payload = { id: Schema.String }
/** The body waits on this gate after its run: completing it makes the engine replay the body. */
const Gate = DurableDeferred.make("gate")

/** The test's workflow: its body runs the graph (see `body`). */
const Run = Workflow.make({ name: "DurableRunTest", payload, idempotencyKey: ({ id }) => id, success: State })

/**
 * The execution body: the graph on Loom's engine under a new thread id, durably, then
 * (with `gate`) the gate; signals `atGate` when its run is done and `done` when it returns.
 */
const body = (
  probe: Probe,
  signals: { readonly atGate: Deferred.Deferred<void>; readonly done: Deferred.Deferred<void> },
  options: { readonly gate: boolean; readonly nap: Duration.DurationInput }
) =>
() =>
  Effect.gen(function*() {
    probe.bodies += 1
    const engine = yield* WorkflowEngine
    const runtime = yield* AgentRuntime
    const context = yield* Effect.context<DurableEngine.WorkflowEngine | DurableEngine.WorkflowInstance>()
    const final = yield* engine.invoke(yield* graph(probe, runtime, options.nap), initial, {
      threadId: `run-${probe.bodies}`
    }).pipe(Effect.provideService(Durability.Durability, DurableRun.activities(context)), Effect.orDie)
    probe.finals.push(final)
    yield* Deferred.succeed(signals.atGate, undefined)
    if (options.gate) yield* DurableDeferred.await(Gate)
    yield* Deferred.succeed(signals.done, undefined)
    return final
  })

/**
 * A runner of its own over the `MessageStorage` provided: closing it is a crash (its
 * entities get 50 ms to stop), and another one over the same storage picks its work up.
 */
const sharding = Sharding.layer.pipe(
  Layer.provideMerge(Runners.layerNoop),
  Layer.provide([RunnerStorage.layerMemory, RunnerHealth.layerNoop]),
  Layer.provide(ShardingConfig.layer({ entityTerminationTimeout: "50 millis" }))
)

const signals = Effect.all({ atGate: Deferred.make<void>(), done: Deferred.make<void>() })

/** Polls `workflow`'s execution `id` until its result passes `until`. */
const pollUntil = (
  workflow: typeof Run,
  id: string,
  until: (result: Workflow.Result<State, never> | undefined) => boolean
) =>
  workflow.poll(id).pipe(
    Effect.filterOrFail(until),
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`${workflow.name} ${id}: no result`) })
  )

/** `pollUntil` for the test clock: polls without sleeping, yielding to the execution's fibers in between. */
const pollNow = (
  workflow: typeof Run,
  id: string,
  until: (result: Workflow.Result<State, never> | undefined) => boolean
) =>
  workflow.poll(id).pipe(
    Effect.zipLeft(Effect.yieldNow()),
    Effect.filterOrFail(until),
    Effect.retry({ times: 1000 })
  )

/** Waits until `n` fibers sleep on the test clock, so an adjust wakes them all. */
const napping = (n: number) =>
  TestClock.sleeps().pipe(
    Effect.zipLeft(Effect.yieldNow()),
    Effect.filterOrFail((sleeps) => sleeps.length >= n),
    Effect.retry({ times: 1000 }),
    Effect.orDie
  )

const completeGate = (workflow: typeof Run, executionId: string) =>
  DurableDeferred.done(Gate, {
    token: DurableDeferred.tokenFromExecutionId(Gate, { workflow, executionId }),
    exit: Exit.void
  })

const ActivityPayload = Schema.Struct({ name: Schema.String, attempt: Schema.Number })

/** The Activities the engine keeps, as `name/attempt`, with how many replies each has; sorted. */
const kept = Effect.map(MessageStorage.MemoryDriver, (driver) =>
  [...driver.requests.values()].flatMap((entry) => {
    if (entry.envelope.tag !== "activity") return []
    const { attempt, name } = Schema.decodeUnknownSync(ActivityPayload)(entry.envelope.payload)
    return [[`${name}/${attempt}`, entry.replies.length] as const]
  }).sort(([a], [b]) => a.localeCompare(b)))

/** Every unit of the graph, as its Activity is named: each asked for once, each answered once. */
const units = [
  "0/a",
  "0/b",
  "0/c",
  "1/agent",
  "1/agent/counter/turn-1/model",
  "1/agent/counter/turn-1/tool/1.0",
  "1/agent/counter/turn-1/tool/1.1",
  "1/agent/counter/turn-2/model"
].map((name) => [`${name}/1`, 1] as const)

const sorted = <K, V>(counts: Map<K, V>) => [...counts].sort(([a], [b]) => String(a).localeCompare(String(b)))

describe("DurableRun", () => {
  it.live("a replayed run gets its finished nodes back from the engine instead of running them again", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const { atGate, done } = yield* signals
      const registered = Run.toLayer(body(probe, { atGate, done }, { gate: true, nap: "5 millis" }))
      yield* Effect.gen(function*() {
        const executionId = yield* Run.execute({ id: "r1" }, { discard: true })
        yield* Deferred.await(atGate)
        // the run is done and the body waits on the gate: the execution suspends
        yield* pollUntil(Run, executionId, (r) => r?._tag === "Suspended")
        assert.strictEqual(probe.bodies, 1)
        yield* completeGate(Run, executionId)
        const result = yield* pollUntil(Run, executionId, (r) => r?._tag === "Complete")
        assert.deepStrictEqual(sorted(probe.nodes), [["a", 1], ["agent", 1], ["b", 1], ["c", 1]])
        assert.deepStrictEqual(sorted(probe.turns), [[1, 1], [2, 1]], "the model was called twice in all")
        assert.deepStrictEqual(sorted(probe.tools), [["x", 1], ["y", 1]])
        assert.strictEqual(probe.bodies, 2, "the body itself ran again")
        assert.strictEqual(probe.finals.length, 2)
        assert.deepStrictEqual(probe.finals[1], probe.finals[0])
        assert.deepStrictEqual(probe.finals[0], {
          visited: ["a", "b", "c", "agent"],
          answer: "counted x and y"
        })
        assert.deepStrictEqual(result?._tag === "Complete" && result.exit, Exit.succeed(probe.finals[0]!))
        assert.isTrue(probe.durable.every((durable) => durable))
        assert.deepStrictEqual(yield* kept, units)
        // Loom ran the graph twice, from scratch: two runs in its store, both finished
        const runs = yield* (yield* CheckpointStore).listRuns
        assert.deepStrictEqual(runs.map((run) => [run.threadId, run.status]).sort(), [
          ["run-1", "finished"],
          ["run-2", "finished"]
        ])
      }).pipe(
        Effect.provide(
          registered.pipe(
            Layer.provideMerge(Layer.merge(loom, agents(probe, script(probe)))),
            Layer.provideMerge(ClusterWorkflowEngine.layer),
            Layer.provideMerge(TestRunner.layer)
          )
        )
      )
    }))

  it.live("a node cut off mid-way runs again, but its finished model calls and tool calls do not", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const { atGate, done } = yield* signals
      const inTurn2 = yield* Deferred.make<void>()
      let cut = false
      // on the first runner, turn 2's model call hangs, after turn 1's model call and tool calls finished
      const model = script(probe, (call) =>
        call === 1
          ? Deferred.succeed(inTurn2, undefined).pipe(
            Effect.zipRight(Effect.never),
            Effect.onInterrupt(() => Effect.sync(() => cut = true))
          )
          : answer)
      const runner = Run.toLayer(body(probe, { atGate, done }, { gate: false, nap: "5 millis" })).pipe(
        Layer.provideMerge(Layer.merge(loom, agents(probe, model))),
        Layer.provideMerge(ClusterWorkflowEngine.layer),
        Layer.provideMerge(sharding)
      )
      // the first runner starts the run and goes down in the middle of the agent node
      const executionId = yield* Effect.gen(function*() {
        const executionId = yield* Run.execute({ id: "c1" }, { discard: true })
        yield* Deferred.await(inTurn2)
        return executionId
      }).pipe(Effect.provide(runner))
      assert.isTrue(cut, "the runner's shutdown cut the model call off")
      assert.deepStrictEqual(sorted(probe.nodes), [["a", 1], ["agent", 1], ["b", 1], ["c", 1]])
      assert.deepStrictEqual(sorted(probe.turns), [[1, 1], [2, 1]])
      assert.deepStrictEqual(sorted(probe.tools), [["x", 1], ["y", 1]])
      assert.strictEqual(probe.finals.length, 0)
      // a second runner over the same storage picks the execution up by itself and replays it
      const result = yield* pollUntil(Run, executionId, (r) => r?._tag === "Complete").pipe(Effect.provide(runner))
      assert.strictEqual(probe.bodies, 2)
      assert.deepStrictEqual(
        sorted(probe.nodes),
        [["a", 1], ["agent", 2], ["b", 1], ["c", 1]],
        "the agent node ran again"
      )
      assert.deepStrictEqual(sorted(probe.turns), [[1, 1], [2, 2]], "turn 1's model call was not made again")
      assert.deepStrictEqual(sorted(probe.tools), [["x", 1], ["y", 1]], "nor were its tool calls")
      assert.deepStrictEqual(probe.finals, [{ visited: ["a", "b", "c", "agent"], answer: "counted x and y" }])
      assert.deepStrictEqual(result?._tag === "Complete" && result.exit, Exit.succeed(probe.finals[0]!))
      // the units cut off were delivered again under their first requests: none was asked for twice
      assert.deepStrictEqual(yield* kept, units)
    }).pipe(Effect.provide(MessageStorage.layerMemory.pipe(Layer.provide(ShardingConfig.layer())))))

  describe("without a durable run, nothing changes", () => {
    it.effect("the same graph runs with Durability `direct`, each unit once", () => {
      const probe = makeProbe()
      return Effect.gen(function*() {
        assert.strictEqual(yield* Durability.Durability, Durability.direct)
        const engine = yield* WorkflowEngine
        const runtime = yield* AgentRuntime
        const run = yield* Effect.fork(engine.invoke(yield* graph(probe, runtime, "1 second"), initial))
        yield* napping(3)
        yield* TestClock.adjust("1 second")
        const final = yield* Fiber.join(run)
        assert.deepStrictEqual(final, { visited: ["a", "b", "c", "agent"], answer: "counted x and y" })
        assert.deepStrictEqual(sorted(probe.nodes), [["a", 1], ["agent", 1], ["b", 1], ["c", 1]])
        assert.deepStrictEqual(sorted(probe.turns), [[1, 1], [2, 1]])
        assert.deepStrictEqual(sorted(probe.tools), [["x", 1], ["y", 1]])
        assert.deepStrictEqual(probe.durable, [false, false, false])
      }).pipe(Effect.provide(Layer.merge(WorkflowEngine.layerMemory, agents(probe, script(probe)))))
    })

    it.effect("a durable run on @effect/workflow's in-memory engine replays on the test clock", () => {
      const probe = makeProbe()
      return Effect.gen(function*() {
        const { atGate, done } = yield* signals
        yield* Effect.gen(function*() {
          const executionId = yield* Run.execute({ id: "m1" }, { discard: true })
          // the fan-out's nodes nap 1 second each, in parallel: one adjust wakes them all
          yield* napping(3)
          yield* TestClock.adjust("1 second")
          yield* Deferred.await(atGate)
          yield* pollNow(Run, executionId, (r) => r?._tag === "Suspended")
          yield* completeGate(Run, executionId)
          yield* Deferred.await(done)
          const result = yield* pollNow(Run, executionId, (r) => r?._tag === "Complete")
          assert.deepStrictEqual(sorted(probe.nodes), [["a", 1], ["agent", 1], ["b", 1], ["c", 1]])
          assert.deepStrictEqual(sorted(probe.turns), [[1, 1], [2, 1]])
          assert.deepStrictEqual(sorted(probe.tools), [["x", 1], ["y", 1]])
          assert.strictEqual(probe.bodies, 2)
          assert.deepStrictEqual(probe.finals[1], probe.finals[0])
          assert.deepStrictEqual(result?._tag === "Complete" && result.exit, Exit.succeed(probe.finals[0]!))
          assert.deepStrictEqual(probe.durable, [true, true, true])
        }).pipe(
          Effect.provide(
            Run.toLayer(body(probe, { atGate, done }, { gate: true, nap: "1 second" })).pipe(
              Layer.provideMerge(Layer.merge(loom, agents(probe, script(probe)))),
              Layer.provideMerge(DurableEngine.layerMemory)
            )
          )
        )
      })
    })
  })
})
