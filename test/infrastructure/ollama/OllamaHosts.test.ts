import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Either } from "effect"
import * as OllamaHosts from "../../../src/infrastructure/ollama/OllamaHosts.js"
import type { BreakerState } from "../../../src/infrastructure/resilience/BreakerState.js"
import { closed } from "../../../src/infrastructure/resilience/BreakerState.js"

const host = (name: string, outstanding: number) => ({ name, outstanding })
const openUntil = (until: number): BreakerState => ({ _tag: "Open", until, trips: 1 })

describe("OllamaHosts.choose", () => {
  it.effect("takes the host with the fewest calls outstanding, ties from the round-robin start", () =>
    Effect.gen(function*() {
      const hosts = [host("a", 2), host("b", 1), host("c", 1)]
      const states = [closed, closed, closed]
      assert.strictEqual((yield* OllamaHosts.choose(hosts, states, 0, 0)).name, "b")
      assert.strictEqual((yield* OllamaHosts.choose(hosts, states, 2, 0)).name, "c")
    }))

  it.effect("skips hosts whose breaker is open, and takes them back once it may probe", () =>
    Effect.gen(function*() {
      const hosts = [host("a", 0), host("b", 5)]
      const states = [openUntil(1_000), closed]
      assert.strictEqual((yield* OllamaHosts.choose(hosts, states, 0, 999)).name, "b")
      assert.strictEqual((yield* OllamaHosts.choose(hosts, states, 0, 1_000)).name, "a")
    }))

  it.effect("with every breaker open fails with CircuitOpen, retryable at the soonest reopening", () =>
    Effect.gen(function*() {
      const chosen = OllamaHosts.choose([host("a", 0), host("b", 0)], [openUntil(5_000), openUntil(3_000)], 0, 1_000)
      assert.isTrue(Either.isLeft(chosen))
      const error = yield* Effect.flip(chosen)
      assert.strictEqual(error._tag, "CircuitOpen")
      assert.isTrue(Duration.equals(error.retryAfter, Duration.millis(2_000)))
    }))
})
