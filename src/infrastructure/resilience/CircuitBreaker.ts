/**
 * A circuit breaker in front of an external service (an Ollama host, an MCP server,
 * a tool). Written by hand over `Ref`: the state machine is the pure `BreakerState.transition`,
 * applied atomically with `Ref.modify`, with time from `Clock` so `TestClock` drives it.
 */
import type { Scope } from "effect"
import { Cause, Duration, Effect, Exit, Metric, PubSub, Ref, Stream } from "effect"
import { CircuitOpen } from "../../domain/Errors.js"
import type { BreakerEvent, BreakerSettings, BreakerState, Permit } from "./BreakerState.js"
import { closed, normalPermit, transition } from "./BreakerState.js"

export type BreakerStatus = "closed" | "open" | "half_open"

/** One state change, as published on `changes`. */
export interface BreakerChange {
  readonly service: string
  readonly from: BreakerStatus
  readonly to: BreakerStatus
  readonly at: number
}

/** `E`: the errors of the calls it protects, which `isFailure` sorts (unknown when it protects anything). */
export interface Options<E = unknown> {
  /** Names the protected service in errors, metrics and changes. */
  readonly service: string
  /** Trip after this many failures in a row (default 5). */
  readonly consecutiveFailures?: number
  /** Also trip on a failure rate over a sliding time window (off unless given). */
  readonly failureRate?: {
    readonly threshold: number
    readonly minimumVolume: number
    readonly window: Duration.DurationInput
    /** Slices of the window (default 10): finer is more exact, coarser is cheaper. */
    readonly buckets?: number
  }
  /** How long the breaker stays open before letting a probe through (default 30 s). */
  readonly resetTimeout?: Duration.DurationInput
  /** Grow the reset timeout on each trip in a row: `resetTimeout * multiplier^(trips-1)`, capped at `max`. */
  readonly resetBackoff?: { readonly multiplier: number; readonly max: Duration.DurationInput }
  /** Probes allowed at once while half-open (default 1). */
  readonly halfOpenMaxProbes?: number
  /** Probe successes that close the breaker (default 1). */
  readonly successThreshold?: number
  /** Which errors count against the service (default: all). Others count as answers. */
  readonly isFailure?: (error: E) => boolean
}

export interface CircuitBreaker<E = unknown> {
  readonly service: string
  /** Runs `self` unless the breaker is open, in which case it fails with `CircuitOpen` without running it. */
  readonly protect: <A, E1 extends E, R>(self: Effect.Effect<A, E1, R>) => Effect.Effect<A, E1 | CircuitOpen, R>
  readonly status: Effect.Effect<BreakerStatus>
  /** The full internal state, for health reports and tests. */
  readonly snapshot: Effect.Effect<BreakerState>
  /** Every status change from the moment the stream is run. */
  readonly changes: Stream.Stream<BreakerChange>
  /** Subscribes now: the stream holds every change from this point, however late it is run. */
  readonly subscribe: Effect.Effect<Stream.Stream<BreakerChange>, never, Scope.Scope>
  /** Closes the breaker by hand, forgetting its history. */
  readonly reset: Effect.Effect<void>
}

/** Breaker status per service: 0 closed, 1 half-open, 2 open. */
export const stateGauge = Metric.gauge("loom_breaker_state", {
  description: "Circuit breaker state per service: 0 closed, 1 half-open, 2 open"
})

export const statusOf = (state: BreakerState): BreakerStatus =>
  state._tag === "Closed" ? "closed" : state._tag === "Open" ? "open" : "half_open"

const statusValue = (status: BreakerStatus): number => status === "closed" ? 0 : status === "half_open" ? 1 : 2

/** Fills in the defaults. */
export const settings = <E>(options: Options<E>): BreakerSettings => {
  const windowMillis = options.failureRate ? Duration.toMillis(options.failureRate.window) : 60_000
  const resetTimeoutMillis = Duration.toMillis(options.resetTimeout ?? "30 seconds")
  return {
    consecutiveFailures: options.consecutiveFailures ?? 5,
    failureRateThreshold: options.failureRate?.threshold ?? Infinity,
    minimumVolume: options.failureRate?.minimumVolume ?? Infinity,
    windowMillis,
    bucketMillis: Math.max(1, Math.floor(windowMillis / (options.failureRate?.buckets ?? 10))),
    resetTimeoutMillis,
    resetBackoffMultiplier: options.resetBackoff?.multiplier ?? 1,
    maxResetTimeoutMillis: options.resetBackoff ? Duration.toMillis(options.resetBackoff.max) : resetTimeoutMillis,
    halfOpenMaxProbes: options.halfOpenMaxProbes ?? 1,
    successThreshold: options.successThreshold ?? 1
  }
}

/** Builds a breaker; the scope owns the change hub. */
export const make = <E = unknown>(options: Options<E>): Effect.Effect<CircuitBreaker<E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const config = settings(options)
    const isFailure = options.isFailure ?? (() => true)
    const service = options.service
    const ref = yield* Ref.make<BreakerState>(closed)
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<BreakerChange>(), PubSub.shutdown)
    const gauge = Metric.tagged(stateGauge, "service", service)
    yield* Metric.set(gauge, 0)

    // Read synchronously inside `Ref.modify`, so the time and the transition are one atomic step.
    const clock = yield* Effect.clock

    const step = (event: BreakerEvent): Effect.Effect<Permit> =>
      Effect.flatMap(
        Ref.modify(ref, (state) => {
          const [permit, next] = transition(config, state, event, clock.unsafeCurrentTimeMillis())
          return [[permit, state, next] as const, next]
        }),
        ([permit, before, after]) => {
          if (before._tag === after._tag) return Effect.succeed(permit)
          const change: BreakerChange = {
            service,
            from: statusOf(before),
            to: statusOf(after),
            at: clock.unsafeCurrentTimeMillis()
          }
          return Effect.as(
            Effect.zipRight(Metric.set(gauge, statusValue(change.to)), PubSub.publish(hub, change)),
            permit
          )
        }
      )

    const settle = (permit: Permit, cause: Cause.Cause<E> | undefined): Effect.Effect<Permit> => {
      if (cause === undefined) return step({ _tag: "Success", permit })
      if (Cause.isInterruptedOnly(cause)) return step({ _tag: "Cancel", permit })
      const failure = Cause.failureOption(cause)
      const counts = failure._tag === "None" || isFailure(failure.value)
      return step({ _tag: counts ? "Failure" : "Success", permit })
    }

    /**
     * Closed is the hot path: acquiring there changes nothing and an interrupted normal call
     * counts for nothing, so the call only needs its outcome recorded. Open and half-open
     * hand out probe slots, which must be returned even on interruption.
     */
    const protect = <A, E1 extends E, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E1 | CircuitOpen, R> =>
      Effect.flatMap(Ref.get(ref), (state): Effect.Effect<A, E1 | CircuitOpen, R> =>
        state._tag === "Closed"
          ? Effect.matchCauseEffect(self, {
            onSuccess: (value) => Effect.as(settle(normalPermit, undefined), value),
            onFailure: (cause) => Effect.zipRight(settle(normalPermit, cause), Effect.failCause(cause))
          })
          : Effect.uninterruptibleMask((restore) =>
            Effect.flatMap(step({ _tag: "Acquire" }), (permit): Effect.Effect<A, E1 | CircuitOpen, R> =>
              permit._tag === "Rejected"
                ? Effect.fail(new CircuitOpen({ service, retryAfter: Duration.millis(permit.retryAfterMillis) }))
                : Effect.onExit(
                  restore(self),
                  (exit) =>
                    settle(permit, Exit.isSuccess(exit) ? undefined : exit.cause)
                ))
          ))

    const snapshot = Ref.get(ref)
    return {
      service,
      protect,
      snapshot,
      status: Effect.map(snapshot, statusOf),
      changes: Stream.fromPubSub(hub),
      subscribe: Stream.fromPubSub(hub, { scoped: true }),
      reset: Effect.asVoid(step({ _tag: "Reset" }))
    } satisfies CircuitBreaker<E>
  })
