import { assert, describe, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Ref, Stream, TestClock } from "effect"
import { InvalidToolInput, ToolFailed } from "../../../src/domain/Errors.js"
import * as CircuitBreaker from "../../../src/infrastructure/resilience/CircuitBreaker.js"

const boom = Effect.fail(new ToolFailed({ tool: "svc", message: "down" }))
const ok = Effect.succeed("ok")

/** A service whose calls are counted, so tests see when the breaker did not call it. */
const counted = Effect.map(Ref.make(0), (calls) => ({
  calls,
  call: <A, E>(self: Effect.Effect<A, E>) => Effect.zipRight(Ref.update(calls, (n) => n + 1), self)
}))

describe("CircuitBreaker", () => {
  it.scoped("trips after N consecutive failures, then fails fast with CircuitOpen without calling", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ service: "svc", consecutiveFailures: 3, resetTimeout: "10 seconds" })
      const { call, calls } = yield* counted
      yield* Effect.exit(breaker.protect(call(boom)))
      yield* Effect.exit(breaker.protect(call(ok)))
      for (let i = 0; i < 2; i++) yield* Effect.exit(breaker.protect(call(boom)))
      assert.strictEqual(yield* breaker.status, "closed", "a success in between resets the count")
      yield* Effect.exit(breaker.protect(call(boom)))
      assert.strictEqual(yield* breaker.status, "open")
      yield* TestClock.adjust("4 seconds")
      const error = yield* Effect.flip(breaker.protect(call(ok)))
      assert.strictEqual(yield* Ref.get(calls), 5)
      assert.strictEqual(error._tag, "CircuitOpen")
      assert.isTrue(error._tag === "CircuitOpen" && Duration.equals(error.retryAfter, Duration.seconds(6)))
    }))

  it.scoped("after the reset timeout one probe goes through; successThreshold probes close it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        service: "svc",
        consecutiveFailures: 1,
        resetTimeout: "1 second",
        successThreshold: 2,
        halfOpenMaxProbes: 1
      })
      yield* Effect.exit(breaker.protect(boom))
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.fork(breaker.protect(Effect.as(Effect.sleep("100 millis"), "probe")))
      yield* TestClock.adjust("1 milli")
      assert.strictEqual(yield* breaker.status, "half_open")
      const second = yield* Effect.flip(breaker.protect(ok))
      assert.strictEqual(second._tag, "CircuitOpen", "only halfOpenMaxProbes probes at once")
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* Fiber.join(probe), "probe")
      assert.strictEqual(yield* breaker.status, "half_open", "one success is not enough")
      assert.strictEqual(yield* breaker.protect(ok), "ok")
      assert.strictEqual(yield* breaker.status, "closed")
    }))

  it.scoped("a failed probe reopens it, with the reset timeout growing by the backoff", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        service: "svc",
        consecutiveFailures: 1,
        resetTimeout: "1 second",
        resetBackoff: { multiplier: 2, max: "3 seconds" }
      })
      yield* Effect.exit(breaker.protect(boom))
      yield* TestClock.adjust("1 second")
      yield* Effect.exit(breaker.protect(boom))
      assert.strictEqual(yield* breaker.status, "open")
      yield* TestClock.adjust("1999 millis")
      assert.strictEqual((yield* Effect.flip(breaker.protect(ok)))._tag, "CircuitOpen")
      yield* TestClock.adjust("1 milli")
      yield* Effect.exit(breaker.protect(boom))
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual(yield* breaker.protect(ok), "ok", "capped at 3 s, not 4 s")
      assert.strictEqual(yield* breaker.status, "closed")
    }))

  it.scoped("trips on failure rate over a sliding window once the minimum volume is reached", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        service: "svc",
        consecutiveFailures: 100,
        failureRate: { threshold: 0.5, minimumVolume: 6, window: "10 seconds", buckets: 10 }
      })
      for (const effect of [boom, ok, boom, ok, boom]) yield* Effect.exit(breaker.protect(effect))
      assert.strictEqual(yield* breaker.status, "closed", "below the minimum volume")
      // the old outcomes slide out of the window: 3 fresh failures out of 5 is not enough volume
      yield* TestClock.adjust("11 seconds")
      for (const effect of [boom, ok, boom, ok, boom]) yield* Effect.exit(breaker.protect(effect))
      assert.strictEqual(yield* breaker.status, "closed")
      yield* Effect.exit(breaker.protect(ok))
      assert.strictEqual(yield* breaker.status, "closed", "3 of 6 failed, but the last was a success")
      yield* Effect.exit(breaker.protect(boom))
      assert.strictEqual(yield* breaker.status, "open", "4 of 7 failed")
    }))

  it.scoped("errors the predicate does not count leave it closed", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        service: "svc",
        consecutiveFailures: 1,
        isFailure: (error) => !(error instanceof InvalidToolInput)
      })
      const invalid = Effect.fail(new InvalidToolInput({ tool: "t", field: "x", message: "bad" }))
      for (let i = 0; i < 5; i++) yield* Effect.exit(breaker.protect(invalid))
      assert.strictEqual(yield* breaker.status, "closed")
      yield* Effect.exit(breaker.protect(boom))
      assert.strictEqual(yield* breaker.status, "open")
    }))

  it.scoped("an interrupted probe frees its slot without counting", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ service: "svc", consecutiveFailures: 1, resetTimeout: "1 second" })
      yield* Effect.exit(breaker.protect(boom))
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.fork(breaker.protect(Effect.never))
      yield* TestClock.adjust("1 milli")
      yield* Fiber.interrupt(probe)
      assert.strictEqual(yield* breaker.status, "half_open")
      assert.strictEqual(yield* breaker.protect(ok), "ok")
      assert.strictEqual(yield* breaker.status, "closed")
    }))

  it.scoped("a success resets failures that came while it ran, though it started with none", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ service: "svc", consecutiveFailures: 2 })
      const slow = yield* Effect.fork(breaker.protect(Effect.as(Effect.sleep("10 millis"), "slow")))
      yield* TestClock.adjust("1 milli")
      yield* Effect.exit(breaker.protect(boom))
      assert.strictEqual((yield* breaker.snapshot)._tag, "Closed")
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(yield* Fiber.join(slow), "slow")
      yield* Effect.exit(breaker.protect(boom))
      assert.strictEqual(yield* breaker.status, "closed", "the slow success broke the run of failures")
      yield* Effect.exit(breaker.protect(boom))
      assert.strictEqual(yield* breaker.status, "open")
    }))

  it.scoped("with a rate window, successes in a clean closed state still count", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        service: "svc",
        consecutiveFailures: 100,
        failureRate: { threshold: 0.5, minimumVolume: 4, window: "10 seconds" }
      })
      for (let i = 0; i < 3; i++) yield* breaker.protect(ok)
      const state = yield* breaker.snapshot
      assert.isTrue(
        state._tag === "Closed" && state.buckets.reduce((n, bucket) => n + bucket.successes, 0) === 3
      )
      for (let i = 0; i < 3; i++) yield* Effect.exit(breaker.protect(boom))
      assert.strictEqual(yield* breaker.status, "closed", "3 of 6 is not above 50%")
    }))

  it.scoped("publishes every state change and can be reset by hand", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ service: "svc", consecutiveFailures: 1, resetTimeout: "1 second" })
      const changes = yield* breaker.subscribe.pipe(
        Effect.flatMap((stream) => Effect.fork(Stream.runCollect(Stream.take(stream, 4))))
      )
      yield* Effect.exit(breaker.protect(boom))
      yield* TestClock.adjust("1 second")
      yield* breaker.protect(ok)
      yield* Effect.exit(breaker.protect(boom))
      yield* breaker.reset
      const seen = Chunk.toReadonlyArray(yield* Fiber.join(changes)).map((c) => `${c.from}->${c.to}@${c.at}`)
      assert.deepStrictEqual(seen, [
        "closed->open@0",
        "open->half_open@1000",
        "half_open->closed@1000",
        "closed->open@1000"
      ])
      assert.strictEqual(yield* breaker.status, "closed")
    }))
})
