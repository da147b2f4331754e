import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Ref, Scope, TestClock } from "effect"
import * as fc from "fast-check"
import { ToolFailed } from "../../../src/domain/Errors.js"
import * as Batcher from "../../../src/infrastructure/resilience/Batcher.js"

/** A batcher whose backend doubles numbers and records every batch with the time it ran. */
const recording = (maxSize: number, maxWait: number, fail?: (items: ReadonlyArray<number>) => boolean) =>
  Effect.gen(function*() {
    const batches = yield* Ref.make<ReadonlyArray<{ readonly items: ReadonlyArray<number>; readonly at: number }>>([])
    const batcher = yield* Batcher.make({
      name: "test",
      maxSize,
      maxWait,
      run: (items: ReadonlyArray<number>) =>
        Effect.gen(function*() {
          const at = yield* Clock.currentTimeMillis
          yield* Ref.update(batches, (list) => [...list, { items, at }])
          if (fail?.(items)) return yield* new ToolFailed({ tool: "backend", message: "batch failed" })
          return items.map((n) => n * 2)
        })
    })
    return { batcher, batches }
  })

describe("Batcher", () => {
  it.scoped("max 3, wait 50 ms: items 1-5 arriving together give [1,2,3] at once and [4,5] at 50 ms", () =>
    Effect.gen(function*() {
      const { batcher, batches } = yield* recording(3, 50)
      const fibers = yield* Effect.forEach([1, 2, 3, 4, 5], (n) => Effect.fork(batcher.submit(n)))
      yield* TestClock.adjust("0 millis")
      assert.deepStrictEqual(yield* Ref.get(batches), [{ items: [1, 2, 3], at: 0 }])
      yield* TestClock.adjust("49 millis")
      assert.strictEqual((yield* Ref.get(batches)).length, 1)
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Ref.get(batches), [{ items: [1, 2, 3], at: 0 }, { items: [4, 5], at: 50 }])
      assert.deepStrictEqual(yield* Effect.forEach(fibers, Fiber.join), [2, 4, 6, 8, 10])
    }))

  it.scoped("the window starts at a batch's first item", () =>
    Effect.gen(function*() {
      const { batcher, batches } = yield* recording(10, 50)
      yield* TestClock.adjust("30 millis")
      const first = yield* Effect.fork(batcher.submit(1))
      yield* TestClock.adjust("40 millis")
      const second = yield* Effect.fork(batcher.submit(2))
      yield* TestClock.adjust("10 millis")
      assert.deepStrictEqual(yield* Ref.get(batches), [{ items: [1, 2], at: 80 }])
      assert.deepStrictEqual([yield* Fiber.join(first), yield* Fiber.join(second)], [2, 4])
    }))

  it.scoped("a failed batch fails each of its callers", () =>
    Effect.gen(function*() {
      const { batcher } = yield* recording(2, 10, (items) => items.includes(1))
      const fibers = yield* Effect.forEach([1, 2, 3], (n) => Effect.fork(Effect.either(batcher.submit(n))))
      yield* TestClock.adjust("10 millis")
      const outcomes = yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Left", "Left", "Right"])
    }))

  it.scoped("a caller interrupted before its batch runs is dropped from it", () =>
    Effect.gen(function*() {
      const { batcher, batches } = yield* recording(5, 50)
      const keep = yield* Effect.fork(batcher.submit(1))
      const drop = yield* Effect.fork(batcher.submit(2))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.interrupt(drop)
      yield* TestClock.adjust("40 millis")
      assert.strictEqual(yield* Fiber.join(keep), 2)
      assert.deepStrictEqual((yield* Ref.get(batches)).map((b) => b.items), [[1]])
    }))

  it.scoped("a batch answering with the wrong number of results fails each caller with a defect", () =>
    Effect.gen(function*() {
      const batcher = yield* Batcher.make({
        name: "short",
        maxSize: 2,
        maxWait: 10,
        run: (items: ReadonlyArray<number>) => Effect.succeed(items.slice(1))
      })
      const fibers = yield* Effect.forEach([1, 2], (n) => Effect.fork(batcher.submit(n)))
      const exits = yield* Effect.forEach(fibers, Fiber.await)
      assert.isTrue(exits.every((exit) => Exit.isFailure(exit) && !Exit.isInterrupted(exit)))
    }))

  it.effect("closing the scope interrupts the callers still waiting, and any later caller", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { batcher, batches } = yield* Scope.extend(recording(5, 50), scope)
      const waiting = yield* Effect.fork(batcher.submit(1))
      yield* TestClock.adjust("10 millis")
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(waiting)))
      assert.isTrue(Exit.isInterrupted(yield* Effect.exit(batcher.submit(2))))
      yield* TestClock.adjust("50 millis")
      assert.deepStrictEqual(yield* Ref.get(batches), [], "nothing runs after the close")
    }))

  it.effect.prop(
    "no item is lost or duplicated, batches hold at most maxSize, and keep arrival order",
    [
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 1, max: 100 }),
      fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 60 })
    ],
    ([maxSize, maxWait, gaps]) =>
      Effect.scoped(Effect.gen(function*() {
        const { batcher, batches } = yield* recording(maxSize, maxWait)
        const fibers = []
        for (const [i, gap] of gaps.entries()) {
          if (gap > 0) yield* TestClock.adjust(gap)
          fibers.push(yield* Effect.fork(batcher.submit(i)))
        }
        yield* TestClock.adjust(maxWait + 1)
        const results = yield* Effect.forEach(fibers, Fiber.join)
        assert.deepStrictEqual(results, gaps.map((_, i) => i * 2))
        const all = (yield* Ref.get(batches)).flatMap((b) => b.items)
        assert.deepStrictEqual(all, gaps.map((_, i) => i), "every item once, in arrival order")
        for (const batch of yield* Ref.get(batches)) assert.isAtMost(batch.items.length, maxSize)
      })),
    { fastCheck: { numRuns: 100 } }
  )
})
