/**
 * The CheckpointStore contract, as the SQLite store keeps it: every store must pass it.
 * test/domain/CheckpointStore.test.ts runs it for the in-memory and SQLite stores,
 * test/infrastructure/persistence/PgCheckpointStore.test.ts for Postgres.
 */
import type { Vitest } from "@effect/vitest"
import { assert, describe } from "@effect/vitest"
import type { Layer } from "effect"
import { Effect, Either, Option, TestClock, TestContext } from "effect"
import { Checkpoint, CheckpointStore, PendingWrite } from "../../src/domain/CheckpointStore.js"
import {
  CheckpointSaved,
  NodeFinished,
  NodeStarted,
  RunRecord,
  RunStatus,
  ThreadId
} from "../../src/domain/Workflow.js"

const t1 = ThreadId.make("t-1")
const first = new Checkpoint({ step: 0, state: { n: 0 }, next: ["a", "b"] })

/** A store holding one run, `t-1`, created with `first` and one event. */
const withRun = Effect.flatMap(
  CheckpointStore,
  (store) => Effect.as(store.create(t1, "counter", first, [new NodeStarted({ step: 0, node: "setup" })]), store)
)

/** What a record says of its place: its id, thread, turn, status and the run that superseded it. */
const place = (
  run: RunRecord
): ReadonlyArray<unknown> => [run.threadId, run.thread, run.turn, run.status, run.supersededBy]

/**
 * Runs the contract's cases with `it` (@effect/vitest's own, or one from `layer(...)` whose
 * shared resources `layer` may need), each on a store of its own from `layer()`.
 */
export const checkpointStoreContract = <R>(
  it: { readonly effect: Vitest.Tester<R> },
  name: string,
  layer: () => Layer.Layer<CheckpointStore, never, R>
): void => {
  /** A clock of each case's own at 0, even where `it` shares one across a file. */
  const fresh = Effect.provide(TestContext.TestContext)

  describe(`CheckpointStore contract: ${name}`, () => {
    it.effect("create records a running run with its first checkpoint; a second create is RunExists", () =>
      Effect.gen(function*() {
        yield* TestClock.adjust(1000)
        const store = yield* withRun
        const run = yield* store.getRun(t1)
        assert.deepStrictEqual(
          [run.threadId, run.workflow, run.status, run.step, run.error, run.createdAt, run.updatedAt],
          ["t-1", "counter", "running", 0, undefined, 1000, 1000]
        )
        const saved = Option.getOrThrow(yield* store.load(t1))
        const { next, state, step } = saved.checkpoint
        assert.deepStrictEqual({ step, state, next }, { step: 0, state: { n: 0 }, next: ["a", "b"] })
        assert.deepStrictEqual(saved.writes, [])
        const again = yield* Effect.flip(store.create(t1, "other", first, []))
        assert.strictEqual(again._tag, "RunExists")
        assert.strictEqual((yield* store.getRun(t1)).workflow, "counter")
      }).pipe(Effect.provide(layer()), fresh))

    it.effect("an unknown run: load is None, getRun and events are RunNotFound, setStatus does not move it", () =>
      Effect.gen(function*() {
        const store = yield* CheckpointStore
        const nope = ThreadId.make("nope")
        assert.isTrue(Option.isNone(yield* store.load(nope)))
        assert.strictEqual((yield* Effect.flip(store.getRun(nope)))._tag, "RunNotFound")
        assert.strictEqual((yield* Effect.flip(store.events(nope)))._tag, "RunNotFound")
        assert.isFalse(yield* store.setStatus(nope, "finished", []))
        assert.deepStrictEqual(yield* store.listRuns, [])
      }).pipe(Effect.provide(layer()), fresh))

    it.effect("pending writes: kept per step and node (the last one wins), read with their step's checkpoint", () =>
      Effect.gen(function*() {
        const store = yield* withRun
        yield* TestClock.adjust(5)
        yield* store.saveWrite(t1, new PendingWrite({ step: 0, node: "b", update: { n: 1 } }), [])
        yield* store.saveWrite(t1, new PendingWrite({ step: 0, node: "a", update: { n: 2 } }), [])
        yield* store.saveWrite(t1, new PendingWrite({ step: 0, node: "b", update: { n: 3 } }), [])
        yield* store.saveWrite(t1, new PendingWrite({ step: 1, node: "c", update: { n: 4 } }), [])
        const writes = (saved: Option.Option<{ readonly writes: ReadonlyArray<PendingWrite> }>) =>
          Option.getOrThrow(saved).writes.map((w) => [w.step, w.node, w.update])
        assert.deepStrictEqual(writes(yield* store.load(t1)), [[0, "a", { n: 2 }], [0, "b", { n: 3 }]])
        const run = yield* store.getRun(t1)
        assert.deepStrictEqual([run.createdAt, run.updatedAt, run.step], [0, 5, 0])

        yield* TestClock.adjust(5)
        yield* store.saveCheckpoint(t1, new Checkpoint({ step: 1, state: { n: 3 }, next: ["c"] }), [])
        const saved = yield* store.load(t1)
        assert.deepStrictEqual(Option.getOrThrow(saved).checkpoint.state, { n: 3 })
        assert.deepStrictEqual(writes(saved), [[1, "c", { n: 4 }]], "the finished step's writes are gone")
        const after = yield* store.getRun(t1)
        assert.deepStrictEqual([after.step, after.updatedAt], [1, 10])
        yield* store.saveCheckpoint(t1, new Checkpoint({ step: 0, state: { n: 0 }, next: ["a"] }), [])
        assert.strictEqual(Option.getOrThrow(yield* store.load(t1)).checkpoint.step, 1, "load reads the latest step")
      }).pipe(Effect.provide(layer()), fresh))

    it.effect("events are numbered 1, 2, ... across every save, in order, and read after a seq", () =>
      Effect.gen(function*() {
        const store = yield* withRun
        yield* store.saveWrite(t1, new PendingWrite({ step: 0, node: "a", update: {} }), [
          new NodeStarted({ step: 0, node: "a" }),
          new NodeFinished({ step: 0, node: "a", update: {} })
        ])
        yield* store.saveCheckpoint(t1, new Checkpoint({ step: 1, state: {}, next: [] }), [
          new CheckpointSaved({ step: 1, next: [] })
        ])
        assert.isTrue(yield* store.setStatus(t1, "interrupted", []))
        // a move that is refused appends nothing
        assert.isFalse(yield* store.setStatus(t1, "interrupted", [new NodeStarted({ step: 9, node: "late" })]))
        const all = yield* store.events(t1)
        assert.deepStrictEqual(all.map((e) => [e.seq, e.event._tag]), [
          [1, "NodeStarted"],
          [2, "NodeStarted"],
          [3, "NodeFinished"],
          [4, "CheckpointSaved"]
        ])
        assert.deepStrictEqual(all[2]!.event, new NodeFinished({ step: 0, node: "a", update: {} }))
        assert.deepStrictEqual((yield* store.events(t1, 2)).map((e) => e.seq), [3, 4])
        assert.deepStrictEqual(yield* store.events(t1, 4), [])
      }).pipe(Effect.provide(layer()), fresh))

    it.effect("setStatus moves a run only where canMove allows, with its events and error", () =>
      Effect.gen(function*() {
        const store = yield* withRun
        const status = Effect.map(store.getRun(t1), (run) => [run.status, run.error])
        assert.isTrue(yield* store.setStatus(t1, "failed", [], "it broke"))
        assert.deepStrictEqual(yield* status, ["failed", "it broke"])
        assert.isFalse(yield* store.setStatus(t1, "interrupted", []))
        assert.isTrue(yield* store.setStatus(t1, "running", []))
        assert.deepStrictEqual(yield* status, ["running", undefined], "a run that carries on has no error")
        assert.isTrue(yield* store.setStatus(t1, "finished", [new NodeStarted({ step: 1, node: "end" })]))
        for (const to of RunStatus.literals) assert.isFalse(yield* store.setStatus(t1, to, [], "late"))
        assert.deepStrictEqual(yield* status, ["finished", undefined])
        assert.deepStrictEqual((yield* store.events(t1)).map((e) => e.seq), [1, 2])
      }).pipe(Effect.provide(layer()), fresh))

    it.effect("listRuns: every run, oldest first, ties by thread id", () =>
      Effect.gen(function*() {
        const store = yield* CheckpointStore
        yield* store.create(ThreadId.make("b"), "w", first, [])
        yield* store.create(ThreadId.make("a"), "w", first, [])
        yield* TestClock.adjust(1)
        yield* store.create(ThreadId.make("0"), "w", first, [])
        assert.deepStrictEqual((yield* store.listRuns).map((run) => run.threadId), ["a", "b", "0"])
      }).pipe(Effect.provide(layer()), fresh))

    it.effect("create places a run in a thread, running or queued; without a placement it is its own thread's first", () =>
      Effect.gen(function*() {
        const store = yield* withRun
        assert.deepStrictEqual(place(yield* store.getRun(t1)), ["t-1", "t-1", 1, "running", undefined])
        const t2 = ThreadId.make("t-2")
        const t3 = ThreadId.make("t-3")
        yield* store.create(t2, "counter", first, [new NodeStarted({ step: 0, node: "queued" })], {
          thread: t1,
          turn: 2,
          status: "queued"
        })
        yield* store.create(t3, "counter", first, [], { thread: t1, turn: 3, status: "running" })
        assert.deepStrictEqual(place(yield* store.getRun(t2)), ["t-2", "t-1", 2, "queued", undefined])
        assert.deepStrictEqual(place(yield* store.getRun(t3)), ["t-3", "t-1", 3, "running", undefined])
        assert.deepStrictEqual((yield* store.listRuns).map(place), [
          ["t-1", "t-1", 1, "running", undefined],
          ["t-2", "t-1", 2, "queued", undefined],
          ["t-3", "t-1", 3, "running", undefined]
        ])
        const saved = Option.getOrThrow(yield* store.load(t2))
        assert.deepStrictEqual(place(saved.run), ["t-2", "t-1", 2, "queued", undefined])
        assert.deepStrictEqual(saved.checkpoint.next, ["a", "b"])
        assert.deepStrictEqual((yield* store.events(t2)).map((e) => [e.seq, e.event._tag]), [[1, "NodeStarted"]])
      }).pipe(Effect.provide(layer()), fresh))

    it.effect("create is RunExists when another run holds the place in the thread, and leaves nothing behind", () =>
      Effect.gen(function*() {
        const store = yield* withRun
        const t2 = ThreadId.make("t-2")
        const loser = ThreadId.make("t-2b")
        yield* store.create(t2, "counter", first, [], { thread: t1, turn: 2, status: "queued" })
        const lost = yield* Effect.flip(
          store.create(loser, "other", first, [], { thread: t1, turn: 2, status: "running" })
        )
        assert.strictEqual(lost._tag, "RunExists")
        assert.strictEqual((yield* Effect.flip(store.getRun(loser)))._tag, "RunNotFound")
        assert.deepStrictEqual(place(yield* store.getRun(t2)), ["t-2", "t-1", 2, "queued", undefined])
        // turn 1 of t-1 is t-1 itself, created without a placement
        const first1 = yield* Effect.flip(
          store.create(loser, "other", first, [], { thread: t1, turn: 1, status: "running" })
        )
        assert.strictEqual(first1._tag, "RunExists")
        // and a run created without a placement wants turn 1 of its own id's thread, which may be taken too
        const b = ThreadId.make("b")
        yield* store.create(ThreadId.make("a"), "w", first, [], { thread: b, turn: 1, status: "running" })
        assert.strictEqual((yield* Effect.flip(store.create(b, "w", first, [])))._tag, "RunExists")
        assert.strictEqual((yield* Effect.flip(store.getRun(b)))._tag, "RunNotFound")
        // the id alone is enough, whatever the placement
        const taken = yield* Effect.flip(store.create(t2, "w", first, [], { thread: t2, turn: 9, status: "queued" }))
        assert.strictEqual(taken._tag, "RunExists")
        yield* store.create(loser, "other", first, [], { thread: t1, turn: 3, status: "queued" })
        assert.deepStrictEqual((yield* store.threadRuns(t1)).map((run) => run.threadId), ["t-1", "t-2", "t-2b"])
      }).pipe(Effect.provide(layer()), fresh))

    it.effect("threadRuns: the runs of one thread, by turn (not by id or age)", () =>
      Effect.gen(function*() {
        const store = yield* CheckpointStore
        const main = ThreadId.make("m")
        const other = ThreadId.make("other")
        yield* store.create(ThreadId.make("m-3"), "w", first, [], { thread: main, turn: 3, status: "queued" })
        yield* TestClock.adjust(1)
        yield* store.create(main, "w", first, [])
        yield* store.create(other, "w", first, [])
        yield* TestClock.adjust(1)
        yield* store.create(ThreadId.make("a-2"), "w", first, [], { thread: main, turn: 2, status: "queued" })
        yield* store.create(ThreadId.make("o-2"), "w", first, [], { thread: other, turn: 2, status: "running" })
        const turns = (thread: ThreadId): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>> =>
          Effect.map(store.threadRuns(thread), (runs) => runs.map((run) => [run.threadId, run.thread, run.turn]))
        assert.deepStrictEqual(yield* turns(main), [["m", "m", 1], ["a-2", "m", 2], ["m-3", "m", 3]])
        assert.deepStrictEqual(yield* turns(other), [["other", "other", 1], ["o-2", "other", 2]])
        assert.deepStrictEqual(
          yield* turns(ThreadId.make("m-3")),
          [],
          "a run's id is not a thread unless it is its own"
        )
        assert.deepStrictEqual(yield* store.threadRuns(ThreadId.make("nope")), [])
      }).pipe(Effect.provide(layer()), fresh))

    it.effect("supersede stops a run that is not over, with supersededBy and its events; no move applies after", () =>
      Effect.gen(function*() {
        const store = yield* CheckpointStore
        const by = ThreadId.make("later")
        /** A run `id` in `status`, made the way the engine gets it there, with one event. */
        const runIn = (id: string, status: RunStatus, error?: string) =>
          Effect.gen(function*() {
            const threadId = ThreadId.make(id)
            const placement = status === "queued" ? { thread: threadId, turn: 1, status } as const : undefined
            yield* store.create(threadId, "w", first, [new NodeStarted({ step: 0, node: "setup" })], placement)
            if (status !== "queued" && status !== "running") {
              assert.isTrue(yield* store.setStatus(threadId, status, [], error), `running -> ${status}`)
            }
            return threadId
          })
        const stop = new NodeStarted({ step: 0, node: "superseded" })
        const history = (threadId: ThreadId) =>
          Effect.map(store.events(threadId), (events) => events.map((e) => [e.seq, e.event._tag]))

        yield* TestClock.adjust(10)
        const moves = [
          ["running", "interrupted"],
          ["waiting", "interrupted"],
          ["queued", "interrupted"],
          ["interrupted", "interrupted"],
          ["running", "cancelled"],
          ["queued", "cancelled"]
        ] as const
        for (const [from, to] of moves) {
          const threadId = yield* runIn(`${from}-${to}`, from, from === "interrupted" ? "shut down" : undefined)
          yield* TestClock.adjust(1)
          const now = yield* TestClock.currentTimeMillis
          assert.isTrue(yield* store.supersede(threadId, by, to, [stop]), `${from} is superseded`)
          const run = yield* store.getRun(threadId)
          assert.deepStrictEqual(place(run), [threadId, threadId, 1, to, "later"], `${from} -> ${to}`)
          assert.deepStrictEqual([run.error, run.updatedAt], [undefined, now], "a superseded run carries no error")
          assert.deepStrictEqual(yield* history(threadId), [[1, "NodeStarted"], [2, "NodeStarted"]])

          assert.isFalse(yield* store.supersede(threadId, ThreadId.make("latest"), "cancelled", [stop]), "only once")
          for (const status of RunStatus.literals) {
            assert.isFalse(yield* store.setStatus(threadId, status, [stop], "late"), `superseded, then -> ${status}`)
          }
          assert.deepStrictEqual(yield* store.getRun(threadId), run, "the superseded run is as it was")
          assert.deepStrictEqual(yield* history(threadId), [[1, "NodeStarted"], [2, "NodeStarted"]])
        }

        for (const [status, error] of [["finished"], ["failed", "it broke"], ["cancelled"]] as const) {
          const threadId = yield* runIn(`over-${status}`, status, error)
          const before = yield* store.getRun(threadId)
          yield* TestClock.adjust(1)
          assert.isFalse(yield* store.supersede(threadId, by, "interrupted", [stop]), `${status} is over`)
          assert.isFalse(yield* store.supersede(threadId, by, "cancelled", [stop]), `${status} is over`)
          assert.deepStrictEqual(yield* store.getRun(threadId), before)
          assert.deepStrictEqual(yield* history(threadId), [[1, "NodeStarted"]])
        }

        const nope = ThreadId.make("nope")
        assert.isFalse(yield* store.supersede(nope, by, "interrupted", [stop]))
        assert.strictEqual((yield* Effect.flip(store.getRun(nope)))._tag, "RunNotFound")
      }).pipe(Effect.provide(layer()), fresh))

    it.effect("clear drops a run's checkpoints, writes and events; its record stays, and a missing run stays missing", () =>
      Effect.gen(function*() {
        const store = yield* withRun
        yield* store.saveWrite(t1, new PendingWrite({ step: 0, node: "a", update: { n: 1 } }), [
          new NodeFinished({ step: 0, node: "a", update: { n: 1 } })
        ])
        yield* store.saveCheckpoint(t1, new Checkpoint({ step: 1, state: { n: 1 }, next: ["c"] }), [
          new CheckpointSaved({ step: 1, next: ["c"] })
        ])
        yield* store.saveWrite(t1, new PendingWrite({ step: 1, node: "c", update: { n: 2 } }), [])
        assert.isTrue(yield* store.setStatus(t1, "cancelled", []))
        const before = yield* store.getRun(t1)
        yield* TestClock.adjust(7)
        yield* store.clear(t1)

        assert.deepStrictEqual(yield* store.getRun(t1), new RunRecord({ ...before, updatedAt: 7 }))
        assert.deepStrictEqual(yield* store.events(t1), [])
        // a store that keeps only a run's latest checkpoint may still hand it back; none hands back a write
        const loaded = yield* Effect.either(store.load(t1))
        if (Either.isLeft(loaded)) assert.strictEqual(loaded.left._tag, "CheckpointCorrupt")
        else assert.deepStrictEqual(Option.getOrThrow(loaded.right).writes, [])
        // the record stays, so the id stays taken
        assert.strictEqual((yield* Effect.flip(store.create(t1, "counter", first, [])))._tag, "RunExists")
        // a late write's event is numbered after the dropped ones: a follower's cursor stays good
        yield* store.saveWrite(t1, new PendingWrite({ step: 1, node: "d", update: { n: 3 } }), [
          new NodeFinished({ step: 1, node: "d", update: { n: 3 } })
        ])
        assert.deepStrictEqual((yield* store.events(t1)).map((e) => e.seq), [4])

        const nope = ThreadId.make("nope")
        yield* store.clear(nope)
        assert.strictEqual((yield* Effect.flip(store.getRun(nope)))._tag, "RunNotFound")
        assert.deepStrictEqual((yield* store.listRuns).map((run) => run.threadId), ["t-1"])
      }).pipe(Effect.provide(layer()), fresh))
  })
}
