import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Either, Fiber, Option, Schema, TestClock } from "effect"
import * as RateLimit from "../../../src/infrastructure/resilience/RateLimit.js"

const rate = (limit: number, interval: Duration.DurationInput): RateLimit.Rate => ({
  limit,
  interval: Duration.decode(interval)
})

describe("RateLimit.parse", () => {
  it.effect("reads <count>/<interval>, with a bare unit or a duration", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(RateLimit.parse("60/minute"), Either.right(rate(60, "1 minute")))
      assert.deepStrictEqual(RateLimit.parse(" 5 / 10 seconds "), Either.right(rate(5, "10 seconds")))
      assert.deepStrictEqual(RateLimit.parse("3/hours"), Either.right(rate(3, "1 hour")))
      const written = RateLimit.format(rate(7, "2 minutes"))
      assert.deepStrictEqual(RateLimit.parse(written), Either.right(rate(7, "2 minutes")))
    }))

  it.effect("says what is wrong with a bad rate", () =>
    Effect.sync(() => {
      for (const bad of ["60", "0/minute", "x/minute", "-1/minute", "60/fortnight", "60/0 seconds", ""]) {
        assert.isTrue(Either.isLeft(RateLimit.parse(bad)), bad)
      }
      assert.include(Either.flip(RateLimit.parse("60/fortnight")).pipe(Either.getOrThrow), "fortnight")
    }))

  it.effect("RateFromString decodes a config file's text and encodes it back", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* Schema.decode(RateLimit.RateFromString)("10/second"), rate(10, "1 second"))
      const error = yield* Effect.flip(Schema.decode(RateLimit.RateFromString)("fast"))
      assert.include(error.message, "expected <count>/<interval>")
      const text = yield* Schema.encode(RateLimit.RateFromString)(rate(10, "1 second"))
      assert.deepStrictEqual(yield* Schema.decode(RateLimit.RateFromString)(text), rate(10, "1 second"))
    }))
})

describe("RateLimit.make", () => {
  it.effect("lets a burst up to the limit through, then one unit every interval / limit, in order", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimit.make
      const twoPerSecond = rate(2, "1 second")
      const delays = yield* Effect.forEach([1, 2, 3, 4], () => limiter.reserve("k", twoPerSecond))
      assert.deepStrictEqual(delays.map(Duration.toMillis), [0, 0, 500, 1000])
      yield* TestClock.adjust("2 seconds")
      // the debt is paid and the bucket refilled to one unit
      assert.strictEqual(Duration.toMillis(yield* limiter.reserve("k", twoPerSecond)), 0)
      assert.strictEqual(Duration.toMillis(yield* limiter.reserve("other", twoPerSecond)), 0, "keys are apart")
    }))

  it.effect("take waits on the Clock; a cost above the limit costs the whole budget", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimit.make
      const tenPerSecond = rate(10, "1 second")
      yield* limiter.take("k", tenPerSecond, 25)
      const next = yield* Effect.fork(limiter.take("k", tenPerSecond, 1))
      yield* TestClock.adjust("99 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(next)), "still waiting")
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(next)
    }))
})
