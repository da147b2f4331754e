/**
 * A circuit breaker in front of an external service (an Ollama host, an MCP server,
 * a tool). The state machine is the pure `BreakerState.transition`; the breaker holds its
 * state in one variable that only `step` writes, each step one synchronous read-transition-write
 * (so atomic, as `Ref.modify` would be, without a `Ref` operation on the hot path), with time
 * from `Clock` so `TestClock` drives it.
 */
import type { Scope } from "effect"
import { Cause, Duration, Effect, Exit, Metric, PubSub, Stream } from "effect"
import { CircuitOpen } from "../../domain/Errors.js"
import type { BreakerEvent, BreakerSettings, BreakerState, Permit } from "./BreakerState.js"
import { closed, normalPermit, successIsNoop, transition } from "./BreakerState.js"

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

/** The events a normal (closed-state) call settles with, and the two without a permit. */
const acquire: BreakerEvent = { _tag: "Acquire" }
const resetEvent: BreakerEvent = { _tag: "Reset" }
const normalSuccess: BreakerEvent = { _tag: "Success", permit: normalPermit }

/** Builds a breaker; the scope owns the change hub. */
export const make = <E = unknown>(options: Options<E>): Effect.Effect<CircuitBreaker<E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const config = settings(options)
    const isFailure = options.isFailure ?? (() => true)
    const service = options.service
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<BreakerChange>(), PubSub.shutdown)
    const gauge = Metric.tagged(stateGauge, "service", service)
    yield* Metric.set(gauge, 0)
    const clock = yield* Effect.clock

    /** Written only by `step`; read synchronously wherever the state is needed. */
    let state: BreakerState = closed

    const publish = (before: BreakerState, after: BreakerState, at: number): Effect.Effect<void> => {
      const change: BreakerChange = { service, from: statusOf(before), to: statusOf(after), at }
      return Effect.zipRight(Metric.set(gauge, statusValue(change.to)), PubSub.publish(hub, change))
    }

    /** One transition: time, read, transition and write in one synchronous step, then the change published. */
    const step = (event: BreakerEvent): Effect.Effect<Permit> =>
      Effect.suspend(() => {
        const before = state
        const now = clock.unsafeCurrentTimeMillis()
        const [permit, after] = transition(config, before, event, now)
        state = after
        return before._tag === after._tag ? Effect.succeed(permit) : Effect.as(publish(before, after, now), permit)
      })

    const settle = (permit: Permit, cause: Cause.Cause<E> | undefined): Effect.Effect<Permit> => {
      if (cause === undefined) return step({ _tag: "Success", permit })
      if (Cause.isInterruptedOnly(cause)) return step({ _tag: "Cancel", permit })
      const failure = Cause.failureOption(cause)
      const counts = failure._tag === "None" || isFailure(failure.value)
      return step({ _tag: counts ? "Failure" : "Success", permit })
    }

    /**
     * A normal call's outcome. A success that `successIsNoop` says changes nothing (closed,
     * no failures in a row, no rate window) skips the step: that is the hot path, one state
     * read and no transition. The check is made when the call ends, against the state then.
     */
    const onNormalSuccess = <A>(value: A): Effect.Effect<A> =>
      successIsNoop(config, state) ? Effect.succeed(value) : Effect.as(step(normalSuccess), value)
    const onNormalFailure = (cause: Cause.Cause<E>): Effect.Effect<never, E> =>
      Effect.zipRight(settle(normalPermit, cause), Effect.failCause(cause))

    /**
     * Closed is the hot path: acquiring there changes nothing and an interrupted normal call
     * counts for nothing, so the call only needs its outcome recorded. Open and half-open
     * hand out probe slots, which must be returned even on interruption.
     */
    const protect = <A, E1 extends E, R>(self: Effect.Effect<A, E1, R>): Effect.Effect<A, E1 | CircuitOpen, R> =>
      Effect.suspend((): Effect.Effect<A, E1 | CircuitOpen, R> =>
        state._tag === "Closed"
          ? Effect.matchCauseEffect(self, {
            onSuccess: onNormalSuccess,
            onFailure: onNormalFailure as (cause: Cause.Cause<E1>) => Effect.Effect<never, E1>
          })
          : Effect.uninterruptibleMask((restore) =>
            Effect.flatMap(step(acquire), (permit): Effect.Effect<A, E1 | CircuitOpen, R> =>
              permit._tag === "Rejected"
                ? Effect.fail(new CircuitOpen({ service, retryAfter: Duration.millis(permit.retryAfterMillis) }))
                : Effect.onExit(
                  restore(self),
                  (exit) => settle(permit, Exit.isSuccess(exit) ? undefined : exit.cause)
                ))
          )
      )

    const snapshot = Effect.sync(() => state)
    return {
      service,
      protect,
      snapshot,
      status: Effect.sync(() => statusOf(state)),
      changes: Stream.fromPubSub(hub),
      subscribe: Stream.fromPubSub(hub, { scoped: true }),
      reset: Effect.asVoid(step(resetEvent))
    } satisfies CircuitBreaker<E>
  })
