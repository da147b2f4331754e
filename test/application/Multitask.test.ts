/**
 * Double-texting in one process: the real `RunManager` over @effect/cluster's workflow
 * engine (`ClusterWorkflowEngine.layer` on `TestRunner.layer`) and Loom's engine over a
 * store in memory. The `gated` workflow's first node does nothing (the run has a
 * checkpoint), its second starts, then waits for its input's gate to open: a run stays `running` until the test opens it, so a second run
 * on its thread finds it busy, mid-node. What the node did is counted outside the engine.
 */
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import * as TestRunner from "@effect/cluster/TestRunner"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Layer, Schedule, Schema } from "effect"
import * as Runs from "../../src/application/RunManager.js"
import { ShuttingDown } from "../../src/application/Shutdown.js"
import * as Workflow from "../../src/application/Workflow.js"
import { WorkflowEngine } from "../../src/application/WorkflowEngine.js"
import { CheckpointStore } from "../../src/domain/CheckpointStore.js"
import type { RunRecord } from "../../src/domain/Workflow.js"
import { ThreadId } from "../../src/domain/Workflow.js"

const State = Schema.Struct({ input: Schema.String, done: Schema.Array(Schema.String) })

/** What the node did, by input: started, finished, cut off. */
interface Probe {
  readonly gates: Map<string, Deferred.Deferred<void>>
  readonly log: Array<string>
}

const gateOf = (probe: Probe, input: string) =>
  Effect.suspend(() => {
    const found = probe.gates.get(input)
    if (found !== undefined) return Effect.succeed(found)
    return Effect.tap(Deferred.make<void>(), (gate) => Effect.sync(() => probe.gates.set(input, gate)))
  })

const open = (probe: Probe, input: string) =>
  Effect.flatMap(gateOf(probe, input), (gate) => Deferred.succeed(gate, void 0))

const gated = (probe: Probe) =>
  Workflow.make({
    name: "gated",
    state: State,
    start: "prep",
    nodes: {
      prep: () => Effect.succeed({}),
      work: (state: typeof State.Type) =>
        Effect.gen(function*() {
          probe.log.push(`start ${state.input}`)
          yield* Deferred.await(yield* gateOf(probe, state.input))
          probe.log.push(`end ${state.input}`)
          return { done: [state.input] }
        }).pipe(Effect.onInterrupt(() => Effect.sync(() => probe.log.push(`cut ${state.input}`))))
    },
    edges: { prep: "work" },
    reducers: { done: Workflow.append }
  })

const layer = WorkflowEngine.layer.pipe(
  Layer.provideMerge(CheckpointStore.layerMemory),
  Layer.provideMerge(ClusterWorkflowEngine.layer),
  Layer.provideMerge(TestRunner.layer)
)

const manager = (probe: Probe) =>
  Effect.gen(function*() {
    const engine = yield* WorkflowEngine
    const graph = yield* Effect.orDie(gated(probe))
    return yield* Runs.make({
      workflows: [Runs.runKind(engine, graph, (_name, input) => ({ input, done: [] }))],
      maxRuns: 4,
      cancelEvery: "100 millis"
    }).pipe(Effect.provideService(ShuttingDown, yield* Deferred.make<void>()))
  })

/** Polls the run every 20 ms until `check` holds (up to 10 s); dies with the last record. */
const until = (runs: Runs.Service, id: string, what: string, check: (run: RunRecord) => boolean) => {
  let last: RunRecord | undefined
  return runs.get(id).pipe(
    Effect.tap((run) => Effect.sync(() => (last = run))),
    Effect.filterOrFail(check, () => "not yet"),
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "timed out" }),
    Effect.catchAll(() => Effect.dieMessage(`timed out waiting for ${what}; last record: ${JSON.stringify(last)}`))
  )
}

const start = (runs: Runs.Service, input: string, multitask?: Runs.Multitask) =>
  runs.start({ kind: "workflow", name: "gated", input, threadId: "chat", ...(multitask ? { multitask } : {}) })

const eventTags = (id: string) =>
  Effect.flatMap(CheckpointStore, (store) => Effect.orDie(store.events(ThreadId.make(id)))).pipe(
    Effect.map((events) => events.map((e) => e.event._tag))
  )

const running = (run: RunRecord) => run.status === "running"

/** A manager whose thread `chat` is busy: its first run (`one`) is inside its gated node. */
const busyThread = Effect.gen(function*() {
  const probe: Probe = { gates: new Map(), log: [] }
  const runs = yield* manager(probe)
  yield* start(runs, "one")
  yield* until(runs, "chat", "the first run to start its node", () => probe.log.includes("start one"))
  return { probe, runs }
})

describe("double-texting: a run started on a busy thread", () => {
  it.live("reject refuses it with RunExists, and the running run goes on untouched", () =>
    Effect.gen(function*() {
      const probe: Probe = { gates: new Map(), log: [] }
      const runs = yield* manager(probe)
      const first = yield* start(runs, "one")
      assert.strictEqual(first, "chat")
      const refused = yield* Effect.flip(start(runs, "two"))
      assert.strictEqual(refused._tag, "RunExists")
      assert.strictEqual((yield* Effect.flip(start(runs, "two", "reject")))._tag, "RunExists")
      yield* open(probe, "one")
      const done = yield* until(runs, first, "the first run to finish", (run) => run.status === "finished")
      assert.deepStrictEqual([done.thread, done.turn], ["chat", 1])
      assert.deepStrictEqual(probe.log, ["start one", "end one"])
    }).pipe(Effect.scoped, Effect.provide(layer)), 20_000)

  it.live("enqueue runs it after the current run, in order, each once", () =>
    Effect.gen(function*() {
      const { probe, runs } = yield* busyThread
      const second = yield* start(runs, "two", "enqueue")
      const third = yield* start(runs, "three", "enqueue")
      const queued = yield* runs.get(second)
      assert.deepStrictEqual([queued.status, queued.thread, queued.turn], ["queued", "chat", 2])
      assert.deepStrictEqual([(yield* runs.get(third)).status, (yield* runs.get(third)).turn], ["queued", 3])
      // an answer to the last one first changes nothing: a queued run waits for the runs before it
      yield* open(probe, "three")
      yield* Effect.sleep("300 millis")
      assert.strictEqual((yield* runs.get(third)).status, "queued")
      assert.deepStrictEqual(yield* eventTags(second), [])

      yield* open(probe, "one")
      yield* until(runs, second, "the second run to start", running)
      assert.strictEqual((yield* runs.get("chat")).status, "finished")
      assert.strictEqual((yield* runs.get(third)).status, "queued")
      yield* open(probe, "two")
      yield* until(runs, third, "the third run to finish", (run) => run.status === "finished")
      assert.deepStrictEqual(probe.log, ["start one", "end one", "start two", "end two", "start three", "end three"])
      assert.deepStrictEqual((yield* runs.thread("chat")).map((run) => [run.turn, run.status]), [
        [1, "finished"],
        [2, "finished"],
        [3, "finished"]
      ])
    }).pipe(Effect.scoped, Effect.provide(layer)), 20_000)

  it.live(
    "interrupt stops the current run mid-node, keeps it interrupted for good, and runs the new one",
    () =>
      Effect.gen(function*() {
        const { probe, runs } = yield* busyThread
        const second = yield* start(runs, "two", "interrupt")
        const stopped = yield* runs.get("chat")
        assert.deepStrictEqual([stopped.status, stopped.supersededBy], ["interrupted", second])
        yield* until(runs, second, "the second run to start its node", () => probe.log.includes("start two"))
        assert.include(probe.log, "cut one")
        // nothing resumes it: no cancel, no answer; opening its gate does nothing
        assert.strictEqual((yield* runs.cancel("chat")).status, "interrupted")
        yield* open(probe, "one")
        yield* open(probe, "two")
        yield* until(runs, second, "the second run to finish", (run) => run.status === "finished")
        assert.strictEqual((yield* runs.get("chat")).status, "interrupted")
        assert.notInclude(probe.log, "end one")
        assert.deepStrictEqual(probe.log.filter((line) => line.startsWith("start")), ["start one", "start two"])
      }).pipe(Effect.scoped, Effect.provide(layer)),
    20_000
  )

  it.live(
    "rollback cancels the current run and the queued ones, removes their checkpoints and events",
    () =>
      Effect.gen(function*() {
        const { probe, runs } = yield* busyThread
        const queued = yield* start(runs, "two", "enqueue")
        assert.isAbove((yield* eventTags("chat")).length, 0)
        assert.deepStrictEqual((yield* runs.history("chat")).map((entry) => entry.next), [["work"]])
        const third = yield* start(runs, "three", "rollback")
        yield* until(runs, third, "the third run to start its node", () => probe.log.includes("start three"))
        for (const id of ["chat", queued]) {
          const run = yield* until(runs, id, `run ${id} rolled back`, (run) => run.status === "cancelled")
          assert.strictEqual(run.supersededBy, third)
        }
        // cleared once its execution has stopped (the holder clears it)
        yield* until(runs, "chat", "the first run's events to be removed", () => true).pipe(
          Effect.zipRight(eventTags("chat")),
          Effect.filterOrFail((tags) => tags.length === 0, () => "not yet"),
          Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("5 seconds"))),
          Effect.orDie
        )
        assert.deepStrictEqual(yield* runs.history("chat"), [])
        assert.deepStrictEqual(yield* eventTags(queued), [])
        yield* open(probe, "three")
        yield* until(runs, third, "the third run to finish", (run) => run.status === "finished")
        assert.deepStrictEqual(probe.log, ["start one", "cut one", "start three", "end three"])
        assert.deepStrictEqual((yield* runs.thread("chat")).map((run) => [run.turn, run.status]), [
          [1, "cancelled"],
          [2, "cancelled"],
          [3, "finished"]
        ])
      }).pipe(Effect.scoped, Effect.provide(layer)),
    20_000
  )

  it.live("on an idle thread every strategy but reject starts the next turn at once", () =>
    Effect.gen(function*() {
      const probe: Probe = { gates: new Map(), log: [] }
      const runs = yield* manager(probe)
      yield* open(probe, "one")
      yield* open(probe, "two")
      yield* start(runs, "one")
      yield* until(runs, "chat", "the first run to finish", (run) => run.status === "finished")
      assert.strictEqual((yield* Effect.flip(start(runs, "two")))._tag, "RunExists")
      const second = yield* start(runs, "two", "interrupt")
      yield* until(runs, second, "the second run to finish", (run) => run.status === "finished")
      const first = yield* runs.get("chat")
      assert.deepStrictEqual([first.status, first.supersededBy], ["finished", undefined])
      // a run's own id is not a thread: a start naming it is refused whatever the strategy
      assert.strictEqual(
        (yield* Effect.flip(runs.start({
          kind: "workflow",
          name: "gated",
          input: "x",
          threadId: second,
          multitask: "enqueue"
        })))._tag,
        "RunExists"
      )
    }).pipe(Effect.scoped, Effect.provide(layer)), 20_000)
})
