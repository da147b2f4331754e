import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, FiberRef, TestClock } from "effect"
import * as Deadline from "../../../src/infrastructure/resilience/Deadline.js"

const late = () => "late" as const

describe("Deadline", () => {
  it.effect("work that ends in time passes through under the test clock", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.as(Effect.sleep("1 second"), 42).pipe(Deadline.within("2 seconds", late)))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), 42)
    }))

  it.effect("work past its deadline is interrupted, its finalizers run, and the deadline's error comes back", () =>
    Effect.gen(function*() {
      const finalized = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.never.pipe(
          Effect.onInterrupt(() => Deferred.succeed(finalized, undefined)),
          Deadline.within("2 seconds", late)
        )
      )
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(yield* Fiber.await(fiber), Exit.fail("late"))
      assert.isTrue(yield* Deferred.isDone(finalized))
    }))

  it.effect("the work's own failure is not a timeout", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.fail("boom").pipe(Deadline.within("2 seconds", late)))
      assert.deepStrictEqual(exit, Exit.fail("boom"))
    }))

  it.effect("interrupting the caller interrupts the work", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const finalized = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Deferred.succeed(started, undefined).pipe(
          Effect.zipRight(Effect.never),
          Effect.onInterrupt(() => Deferred.succeed(finalized, undefined)),
          Deadline.within("1 minute", late)
        )
      )
      yield* Deferred.await(started)
      yield* Fiber.interrupt(fiber)
      assert.isTrue(yield* Deferred.isDone(finalized))
    }))

  it.effect("the work runs on the caller's fiber: its FiberRef changes are the caller's, as without a deadline", () =>
    Effect.gen(function*() {
      const ref = FiberRef.unsafeMake(0)
      yield* FiberRef.set(ref, 1).pipe(Deadline.within("1 second", late))
      assert.strictEqual(yield* FiberRef.get(ref), 1)
    }))

  it.effect("after a timeout the caller is not interrupted: it goes on, and can wait again", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.flip(Effect.never.pipe(Deadline.within("1 second", late))).pipe(
          Effect.zipLeft(Effect.sleep("1 second")),
          Effect.map((error) => `${error}, then awake`)
        )
      )
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), "late, then awake")
    }))

  it.effect("a caller interrupted by someone else during the deadline stays interrupted", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Deferred.succeed(started, undefined).pipe(Effect.zipRight(Effect.never), Deadline.within("1 second", late))
      )
      yield* Deferred.await(started)
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
    }))

  it.live("on the live clock, through Effect's clock scheduler", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* Effect.as(Effect.sleep("5 millis"), 42).pipe(Deadline.within("1 second", late)), 42)
      assert.strictEqual(yield* Effect.flip(Effect.never.pipe(Deadline.within("20 millis", late))), "late")
    }))

  it.live("on the live clock, deadline after deadline (the scheduler once known): each passes, expires or is cut off", () =>
    Effect.gen(function*() {
      for (let round = 0; round < 3; round++) {
        assert.strictEqual(
          yield* Effect.as(Effect.sleep("2 millis"), round).pipe(Deadline.within("1 second", late)),
          round
        )
        const finalized = yield* Deferred.make<void>()
        const expired = yield* Effect.flip(
          Effect.never.pipe(
            Effect.onInterrupt(() => Deferred.succeed(finalized, undefined)),
            Deadline.within("10 millis", late)
          )
        )
        assert.strictEqual(expired, "late")
        assert.isTrue(yield* Deferred.isDone(finalized))
        // the expired timer left nothing behind: the caller is not interrupted and waits again
        assert.strictEqual(yield* Effect.as(Effect.sleep("15 millis"), "awake"), "awake")
        const cut = yield* Effect.fork(Effect.never.pipe(Deadline.within("1 second", late)))
        yield* Effect.sleep("2 millis")
        assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(cut)))
      }
    }))
})
