/** The cost of a breaker-protected no-op call, against cockatiel's circuit breaker. */
import { circuitBreaker, ConsecutiveBreaker, handleAll } from "cockatiel"
import { Effect, Exit, Scope } from "effect"
import { CircuitBreaker } from "loom"
import * as floors from "./floors.js"
import type { Scenario } from "./Scenario.js"
import { wallMs } from "./Scenario.js"

const calls = 200_000

const scope = Effect.runSync(Scope.make())
const breaker = Effect.runSync(
  CircuitBreaker.make({ service: "bench", consecutiveFailures: 5, resetTimeout: "10 seconds" }).pipe(
    Scope.extend(scope)
  )
)
const loop = Effect.forEach(Array.from({ length: calls }), () => breaker.protect(Effect.void), { discard: true })

const policy = circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) })

export const noopCall: Scenario = {
  id: "breaker.noop-call",
  unit: "ns/call",
  better: "lower",
  loom: async () => ((await wallMs(() => Effect.runPromise(loop))) * 1e6) / calls,
  baseline: async () =>
    ((await wallMs(async () => {
      for (let i = 0; i < calls; i++) await policy.execute(() => undefined)
    })) * 1e6) / calls,
  floor: async () => ((await wallMs(() => Effect.runPromise(floors.breaker(calls)))) * 1e6) / calls,
  teardown: () => Effect.runPromise(Scope.close(scope, Exit.void))
}
