/**
 * The CheckpointStore contract, as the SQLite store keeps it: every store must pass it.
 * test/domain/CheckpointStore.test.ts runs it for the in-memory and SQLite stores,
 * test/infrastructure/persistence/PgCheckpointStore.test.ts for Postgres.
 */
import type { Vitest } from "@effect/vitest"
import { assert, describe } from "@effect/vitest"
import type { Layer } from "effect"
import { Effect, Option, TestClock, TestContext } from "effect"
import { Checkpoint, CheckpointStore, PendingWrite } from "../../src/domain/CheckpointStore.js"
import { CheckpointSaved, NodeFinished, NodeStarted, RunStatus, ThreadId } from "../../src/domain/Workflow.js"

const t1 = ThreadId.make("t-1")
const first = new Checkpoint({ step: 0, state: { n: 0 }, next: ["a", "b"] })

/** A store holding one run, `t-1`, created with `first` and one event. */
const withRun = Effect.flatMap(
  CheckpointStore,
  (store) => Effect.as(store.create(t1, "counter", first, [new NodeStarted({ step: 0, node: "setup" })]), store)
)

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
  })
}
