/**
 * The pure breaker machine against an independent reference model: for any sequence
 * of calls, outcomes, clock steps and resets, both agree on every permit and status.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import type { BreakerSettings, BreakerState, Permit } from "../../../src/infrastructure/resilience/BreakerState.js"
import { closed, normalPermit, successIsNoop, transition } from "../../../src/infrastructure/resilience/BreakerState.js"
import { settings as fillSettings, statusOf } from "../../../src/infrastructure/resilience/CircuitBreaker.js"

/** The same rules written the obvious way: raw outcome log, explicit generation counter. */
class ReferenceBreaker {
  status: "closed" | "open" | "half_open" = "closed"
  consecutive = 0
  log: Array<{ at: number; failure: boolean }> = []
  openUntil = 0
  trips = 0
  generation = 0
  probes = 0
  successes = 0
  constructor(readonly s: BreakerSettings) {}

  private trip(now: number) {
    this.trips++
    const delay = Math.min(
      this.s.resetTimeoutMillis * this.s.resetBackoffMultiplier ** (this.trips - 1),
      Math.max(this.s.maxResetTimeoutMillis, this.s.resetTimeoutMillis)
    )
    this.status = "open"
    this.openUntil = now + delay
  }
  close() {
    this.status = "closed"
    this.consecutive = 0
    this.log = []
    this.trips = 0
    this.probes = 0
    this.successes = 0
  }
  acquire(now: number): { kind: "normal" | "probe" | "rejected"; generation: number; retryAfter: number } {
    if (this.status === "closed") return { kind: "normal", generation: 0, retryAfter: 0 }
    if (this.status === "open") {
      if (now < this.openUntil) return { kind: "rejected", generation: 0, retryAfter: this.openUntil - now }
      this.status = "half_open"
      this.generation = this.trips
      this.probes = 1
      this.successes = 0
      return { kind: "probe", generation: this.generation, retryAfter: 0 }
    }
    if (this.probes < this.s.halfOpenMaxProbes) {
      this.probes++
      return { kind: "probe", generation: this.generation, retryAfter: 0 }
    }
    return { kind: "rejected", generation: 0, retryAfter: Math.max(1, Math.min(this.s.resetTimeoutMillis, 1000)) }
  }
  settle(permit: { kind: string; generation: number }, outcome: "success" | "failure" | "cancel", now: number) {
    if (permit.kind === "normal" && this.status === "closed") {
      if (outcome === "cancel") return
      this.log.push({ at: now, failure: outcome === "failure" })
      const bucket = (t: number) => t - (t % this.s.bucketMillis)
      this.log = this.log.filter((entry) => bucket(entry.at) > now - this.s.windowMillis)
      if (outcome === "success") {
        this.consecutive = 0
        return
      }
      this.consecutive++
      const failures = this.log.filter((entry) => entry.failure).length
      const total = this.log.length
      if (
        this.consecutive >= this.s.consecutiveFailures ||
        (total >= this.s.minimumVolume && failures / total > this.s.failureRateThreshold)
      ) {
        this.trips = 0
        this.trip(now)
      }
      return
    }
    if (permit.kind === "probe" && this.status === "half_open" && permit.generation === this.generation) {
      if (outcome === "cancel") this.probes--
      else if (outcome === "failure") this.trip(now)
      else {
        this.successes++
        this.probes--
        if (this.successes >= this.s.successThreshold) this.close()
      }
    }
  }
}

type Op =
  | { readonly op: "advance"; readonly ms: number }
  | { readonly op: "acquire" }
  | { readonly op: "settle"; readonly index: number; readonly outcome: "success" | "failure" | "cancel" }
  | { readonly op: "reset" }

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 3000 }) }), weight: 2 },
  { arbitrary: fc.constant({ op: "acquire" as const }), weight: 4 },
  {
    arbitrary: fc.record({
      op: fc.constant("settle" as const),
      index: fc.nat(),
      outcome: fc.constantFrom("success" as const, "failure" as const, "cancel" as const)
    }),
    weight: 4
  },
  { arbitrary: fc.constant({ op: "reset" as const }), weight: 1 }
)

const settingsArbitrary = fc.record({
  consecutiveFailures: fc.integer({ min: 1, max: 6 }),
  rate: fc.option(
    fc.record({
      threshold: fc.double({ min: 0.1, max: 1, noNaN: true }),
      minimumVolume: fc.integer({ min: 1, max: 10 }),
      window: fc.integer({ min: 100, max: 10_000 })
    }),
    { nil: undefined }
  ),
  resetTimeout: fc.integer({ min: 1, max: 5000 }),
  backoff: fc.option(
    fc.record({ multiplier: fc.integer({ min: 1, max: 4 }), max: fc.integer({ min: 1, max: 20_000 }) }),
    {
      nil: undefined
    }
  ),
  halfOpenMaxProbes: fc.integer({ min: 1, max: 3 }),
  successThreshold: fc.integer({ min: 1, max: 3 })
}).map((o) =>
  fillSettings({
    service: "model",
    consecutiveFailures: o.consecutiveFailures,
    ...(o.rate ? { failureRate: { ...o.rate, window: o.rate.window } } : {}),
    resetTimeout: o.resetTimeout,
    ...(o.backoff ? { resetBackoff: o.backoff } : {}),
    halfOpenMaxProbes: o.halfOpenMaxProbes,
    successThreshold: o.successThreshold
  })
)

describe("BreakerState", () => {
  it.prop(
    "transitions match the reference model for any event sequence",
    [settingsArbitrary, fc.array(opArbitrary, { minLength: 10, maxLength: 300, size: "max" })],
    ([settings, ops]) => {
      const model = new ReferenceBreaker(settings)
      let state: BreakerState = closed
      let now = 0
      const held: Array<{ permit: Permit; model: { kind: string; generation: number } }> = []
      for (const op of ops) {
        switch (op.op) {
          case "advance":
            now += op.ms
            break
          case "reset":
            state = transition(settings, state, { _tag: "Reset" }, now)[1]
            model.close()
            break
          case "acquire": {
            const [permit, next] = transition(settings, state, { _tag: "Acquire" }, now)
            state = next
            const expected = model.acquire(now)
            const kind = permit._tag === "Normal" ? "normal" : permit._tag === "Probe" ? "probe" : "rejected"
            assert.strictEqual(kind, expected.kind)
            if (permit._tag === "Rejected") assert.strictEqual(permit.retryAfterMillis, expected.retryAfter)
            else held.push({ permit, model: expected })
            break
          }
          case "settle": {
            if (held.length === 0) break
            const [{ model: modelPermit, permit }] = held.splice(op.index % held.length, 1) as [typeof held[number]]
            const tag = op.outcome === "success" ? "Success" : op.outcome === "failure" ? "Failure" : "Cancel"
            state = transition(settings, state, { _tag: tag, permit }, now)[1]
            model.settle(modelPermit, op.outcome, now)
            break
          }
        }
        assert.strictEqual(statusOf(state), model.status)
      }
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "successIsNoop holds exactly when a normal success leaves the state object as it is",
    [settingsArbitrary, fc.array(opArbitrary, { minLength: 1, maxLength: 100 })],
    ([settings, ops]) => {
      let state: BreakerState = closed
      let now = 0
      const held: Array<Permit> = []
      for (const op of ops) {
        const [, unchanged] = transition(settings, state, { _tag: "Success", permit: normalPermit }, now)
        if (successIsNoop(settings, state)) assert.strictEqual(unchanged, state)
        if (state._tag === "Closed" && unchanged === state) assert.isTrue(successIsNoop(settings, state))
        if (op.op === "advance") now += op.ms
        else if (op.op === "reset") state = closed
        else if (op.op === "acquire") {
          const [permit, next] = transition(settings, state, { _tag: "Acquire" }, now)
          state = next
          if (permit._tag !== "Rejected") held.push(permit)
        } else if (held.length > 0) {
          const [permit] = held.splice(op.index % held.length, 1) as [Permit]
          const tag = op.outcome === "success" ? "Success" : op.outcome === "failure" ? "Failure" : "Cancel"
          state = transition(settings, state, { _tag: tag, permit }, now)[1]
        }
      }
    },
    { fastCheck: { numRuns: 200 } }
  )

  const rated = fillSettings({
    service: "svc",
    consecutiveFailures: 100,
    resetTimeout: "30 seconds",
    failureRate: { threshold: 0.5, minimumVolume: 4, window: "10 seconds" }
  })
  type Outcome = "Success" | "Failure"
  const outcome = (state: BreakerState, tag: Outcome) =>
    transition(rated, state, { _tag: tag, permit: normalPermit }, 0)[1]
  const after = (outcomes: ReadonlyArray<Outcome>) => outcomes.reduce(outcome, closed)

  it("trips when the failure rate is above the threshold, not at it (as opossum and cockatiel)", () => {
    const half = after(["Success", "Success", "Failure", "Failure"])
    assert.strictEqual(statusOf(half), "closed", "2 of 4 is 50%, not above it")
    assert.strictEqual(statusOf(outcome(half, "Failure")), "open", "3 of 5 is above 50%")
  })

  it("a half-open breaker turns callers away with a retryAfter above 0", () => {
    const open = after(["Failure", "Failure", "Failure", "Success", "Failure"])
    assert.strictEqual(statusOf(open), "open")
    const [, probing] = transition(rated, open, { _tag: "Acquire" }, 30_000)
    const [permit] = transition(rated, probing, { _tag: "Acquire" }, 30_000)
    assert.deepStrictEqual(permit, { _tag: "Rejected", retryAfterMillis: 1000 })
  })
})
