import { assert, describe, it } from "@effect/vitest"
import { Data, Duration, Effect, Fiber, Option, TestClock } from "effect"
import { RetryPolicy } from "../../../src/domain/RetryPolicy.js"
import * as RetryAfter from "../../../src/infrastructure/resilience/RetryAfter.js"

const seconds = (n: number) => Option.some(Duration.seconds(n))

describe("RetryAfter.parse", () => {
  it.effect("reads delay-seconds, capped at a minute", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(RetryAfter.parse("2", 0), seconds(2))
      assert.deepStrictEqual(RetryAfter.parse(" 0 ", 0), seconds(0))
      assert.deepStrictEqual(RetryAfter.parse("3600", 0), Option.some(RetryAfter.maxRetryAfter))
    }))

  it.effect("reads an HTTP date against the reply's Date, else against now; a past date is no wait", () =>
    Effect.sync(() => {
      const at = "Wed, 21 Oct 2015 07:28:10 GMT"
      assert.deepStrictEqual(RetryAfter.parse(at, 0, "Wed, 21 Oct 2015 07:28:00 GMT"), seconds(10))
      assert.deepStrictEqual(RetryAfter.parse(at, Date.parse("2015-10-21T07:28:07Z")), seconds(3))
      assert.deepStrictEqual(RetryAfter.parse(at, Date.parse("2015-10-21T07:28:07Z"), "not a date"), seconds(3))
      assert.deepStrictEqual(RetryAfter.parse(at, Date.parse("2016-01-01T00:00:00Z")), seconds(0))
    }))

  it.effect("anything else is no Retry-After", () =>
    Effect.sync(() => {
      for (const bad of ["soon", "-5", "1.5", ""]) assert.isTrue(Option.isNone(RetryAfter.parse(bad, 0)), bad)
    }))
})

class Busy extends Data.TaggedError("Busy")<{ readonly retryAfter?: Duration.Duration; readonly fatal?: boolean }> {}

const policy = RetryPolicy.make({
  maxRetries: 3,
  initialDelay: Duration.millis(100),
  multiplier: 1,
  maxDelay: Duration.millis(100),
  jitter: false
})
const schedule = RetryAfter.schedule<Busy>(
  policy,
  (error) => error.fatal !== true,
  (error) => Option.fromNullable(error.retryAfter)
)

/** Fails with `errors` in turn, then succeeds; counts attempts. */
const flaky = (errors: ReadonlyArray<Busy>) => {
  let attempts = 0
  const run = Effect.suspend(() => {
    const error = errors[attempts++]
    return error ? Effect.fail(error) : Effect.succeed(attempts)
  })
  return { run, attempts: () => attempts }
}

describe("RetryAfter.schedule", () => {
  it.effect("waits the longer of the policy's delay and the error's retryAfter", () =>
    Effect.gen(function*() {
      const call = flaky([new Busy({ retryAfter: Duration.seconds(2) }), new Busy({})])
      const fiber = yield* Effect.fork(Effect.retry(call.run, schedule))
      yield* TestClock.adjust("1999 millis")
      assert.strictEqual(call.attempts(), 1, "not retried before its Retry-After")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(call.attempts(), 2)
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* Fiber.join(fiber), 3, "without one, the policy's delay")
    }))

  it.effect("keeps the policy's delay when it is the longer, and its predicate", () =>
    Effect.gen(function*() {
      const call = flaky([new Busy({ retryAfter: Duration.millis(10) })])
      const fiber = yield* Effect.fork(Effect.retry(call.run, schedule))
      yield* TestClock.adjust("99 millis")
      assert.strictEqual(call.attempts(), 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), 2)
      const fatal = flaky([new Busy({ fatal: true })])
      const error = yield* Effect.flip(Effect.retry(fatal.run, schedule))
      assert.isTrue(error.fatal)
      assert.strictEqual(fatal.attempts(), 1)
    }))
})
