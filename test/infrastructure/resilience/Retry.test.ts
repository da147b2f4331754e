import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigProvider, Duration, Effect, Fiber, Ref, TestClock } from "effect"
import { CircuitOpen, InvalidToolInput, ToolFailed } from "../../../src/domain/Errors.js"
import { RetryPolicy } from "../../../src/domain/RetryPolicy.js"
import * as Retry from "../../../src/infrastructure/resilience/Retry.js"

const policy = (overrides: Partial<ConstructorParameters<typeof RetryPolicy>[0]> = {}) =>
  RetryPolicy.make({
    maxRetries: 5,
    initialDelay: Duration.millis(100),
    multiplier: 2,
    maxDelay: Duration.millis(300),
    jitter: false,
    ...overrides
  })

/** Fails `failures` times with `error`, recording the clock at every attempt. */
const failing = <E>(failures: number, error: E) =>
  Effect.map(Ref.make<ReadonlyArray<number>>([]), (attempts) => ({
    attempts,
    effect: Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.flatMap(Ref.updateAndGet(attempts, (list) => [...list, now]), (list) =>
        list.length <= failures ? Effect.fail(error) : Effect.succeed(list.length)))
  }))

describe("Retry", () => {
  it.effect("backs off exponentially, capped at maxDelay", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing(4, new ToolFailed({ tool: "t", message: "flaky" }))
      const fiber = yield* Effect.fork(Effect.retry(effect, Retry.schedule(policy())))
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* Fiber.join(fiber), 5)
      assert.deepStrictEqual(yield* Ref.get(attempts), [0, 100, 300, 600, 900])
    }))

  it.effect("gives up after maxRetries", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing(10, new ToolFailed({ tool: "t", message: "down" }))
      const fiber = yield* Effect.fork(Effect.flip(Effect.retry(effect, Retry.schedule(policy({ maxRetries: 2 })))))
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* Fiber.join(fiber))._tag, "ToolFailed")
      assert.strictEqual((yield* Ref.get(attempts)).length, 3)
    }))

  it.effect("never retries CircuitOpen, InvalidToolInput or a non-retryable ToolFailed", () =>
    Effect.gen(function*() {
      for (
        const error of [
          new CircuitOpen({ service: "s", retryAfter: Duration.seconds(1) }),
          new InvalidToolInput({ tool: "t", field: "f", message: "bad" }),
          new ToolFailed({ tool: "t", message: "fatal", retryable: false })
        ]
      ) {
        const { attempts, effect } = yield* failing(10, error)
        const fiber = yield* Effect.fork(Effect.exit(Effect.retry(effect, Retry.schedule(policy()))))
        yield* TestClock.adjust("10 seconds")
        yield* Fiber.join(fiber)
        assert.strictEqual((yield* Ref.get(attempts)).length, 1, error._tag)
      }
      assert.isTrue(Retry.isRetryable(new ToolFailed({ tool: "t", message: "transient" })))
    }))

  it.effect("jitter keeps delays within 80%-120% of the backoff", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failing(3, new ToolFailed({ tool: "t", message: "flaky" }))
      const fiber = yield* Effect.fork(
        Effect.retry(effect, Retry.schedule(policy({ jitter: true, maxDelay: Duration.seconds(10) })))
      )
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      const times = yield* Ref.get(attempts)
      const delays = times.slice(1).map((t, i) => t - times[i]!)
      ;[100, 200, 400].forEach((base, i) => {
        assert.isAtLeast(delays[i]!, base * 0.8)
        assert.isAtMost(delays[i]!, base * 1.2)
      })
    }))

  it.effect("reads a policy from config and names an invalid variable", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) =>
        Effect.withConfigProvider(
          Retry.config("LOOM_RETRY"),
          ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })
        )
      const ok = yield* read({ LOOM_RETRY_MAX_RETRIES: "3", LOOM_RETRY_INITIAL_DELAY: "50 millis" })
      assert.strictEqual(ok.maxRetries, 3)
      assert.isTrue(Duration.equals(ok.initialDelay, Duration.millis(50)))
      assert.strictEqual(ok.multiplier, 2)
      const error = yield* Effect.flip(read({ LOOM_RETRY_MULTIPLIER: "0.5" }))
      assert.include(String(error), "LOOM_RETRY_MULTIPLIER")
    }))
})
