import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, TestClock } from "effect"
import * as Timeouts from "../../../src/infrastructure/resilience/Timeouts.js"

describe("Timeouts", () => {
  it.effect("an exceeded deadline fails with Timeout naming the operation", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.flip(
          Effect.never.pipe(
            Timeouts.apply("mcp.call"),
            Effect.provide(Timeouts.Timeouts.layer({ "mcp.call": Duration.seconds(2) }))
          )
        )
      )
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error.operation, "mcp.call")
      assert.isTrue(Duration.equals(error.after, Duration.seconds(2)))
      assert.strictEqual(error.message, "mcp.call timed out after 2000 ms")
    }))

  it.effect("work that finishes in time passes through", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.as(Effect.sleep("1 second"), 42).pipe(Timeouts.within("op", "2 seconds")))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), 42)
    }))

  it.effect("reads LOOM_TIMEOUT_* and names an invalid variable", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) =>
        Effect.withConfigProvider(
          Timeouts.config,
          ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })
        )
      const table = yield* read({ LOOM_TIMEOUT_LLM_CHAT: "90 seconds" })
      assert.isTrue(Duration.equals(table["llm.chat"], Duration.seconds(90)))
      assert.isTrue(Duration.equals(table["tool.default"], Timeouts.defaults["tool.default"]))
      const error = yield* Effect.flip(read({ LOOM_TIMEOUT_TOOL_DEFAULT: "soon" }))
      assert.include(String(error), "LOOM_TIMEOUT_TOOL_DEFAULT")
    }))
})
