/**
 * The circuit breaker's state machine as a pure function `(settings, state, event, now)`.
 * Keeping it pure lets `CircuitBreaker` apply it atomically with `Ref.modify` and lets
 * tests check it against a reference model for any sequence of events.
 */

/** Outcomes counted in one slice of the sliding window. */
export interface Bucket {
  readonly start: number
  readonly successes: number
  readonly failures: number
}

export type BreakerState =
  | {
    readonly _tag: "Closed"
    /** Failures in a row since the last success. */
    readonly consecutiveFailures: number
    readonly buckets: ReadonlyArray<Bucket>
  }
  | {
    readonly _tag: "Open"
    /** Clock millis from which the next call is let through as a probe. */
    readonly until: number
    /** How many times the breaker tripped since it was last closed; drives the reset backoff. */
    readonly trips: number
  }
  | {
    readonly _tag: "HalfOpen"
    readonly probesInFlight: number
    readonly successes: number
    readonly trips: number
  }

/** What the caller holds after `Acquire`: run as a normal call, as a probe of half-open generation `trips`, or not at all. */
export type Permit =
  | { readonly _tag: "Normal" }
  | { readonly _tag: "Probe"; readonly trips: number }
  | { readonly _tag: "Rejected"; readonly retryAfterMillis: number }

export type BreakerEvent =
  | { readonly _tag: "Acquire" }
  | { readonly _tag: "Success"; readonly permit: Permit }
  | { readonly _tag: "Failure"; readonly permit: Permit }
  /** The call was interrupted: it says nothing about the service, but frees a probe slot. */
  | { readonly _tag: "Cancel"; readonly permit: Permit }
  | { readonly _tag: "Reset" }

export interface BreakerSettings {
  /** Trip after this many failures in a row. */
  readonly consecutiveFailures: number
  /**
   * Trip when failures / calls in the window exceed this rate (0..1], given `minimumVolume` calls:
   * strictly above, as opossum and cockatiel do, so a 0.5 threshold moved from either trips alike.
   */
  readonly failureRateThreshold: number
  readonly minimumVolume: number
  readonly windowMillis: number
  readonly bucketMillis: number
  readonly resetTimeoutMillis: number
  /** Each trip without closing in between multiplies the reset timeout, up to `maxResetTimeoutMillis`. */
  readonly resetBackoffMultiplier: number
  readonly maxResetTimeoutMillis: number
  readonly halfOpenMaxProbes: number
  /** Probe successes needed to close again. */
  readonly successThreshold: number
}

export const closed: BreakerState = { _tag: "Closed", consecutiveFailures: 0, buckets: [] }

export const normalPermit: Permit = { _tag: "Normal" }

/** The reset timeout after the `trips`-th trip in a row. */
export const resetDelay = (settings: BreakerSettings, trips: number): number =>
  Math.min(
    settings.resetTimeoutMillis * Math.pow(settings.resetBackoffMultiplier, Math.max(0, trips - 1)),
    Math.max(settings.maxResetTimeoutMillis, settings.resetTimeoutMillis)
  )

/**
 * How long a caller turned away while the probes are out should wait: the probe's answer
 * cannot be known, so the smaller of the reset timeout and one second, never 0 (a client
 * that honours `retryAfter` would otherwise come straight back into the probing breaker).
 */
export const probeRetryMillis = (settings: BreakerSettings): number =>
  Math.max(1, Math.min(settings.resetTimeoutMillis, 1000))

const open = (settings: BreakerSettings, trips: number, now: number): BreakerState => ({
  _tag: "Open",
  until: now + resetDelay(settings, trips),
  trips
})

/** Adds one outcome to the window, dropping buckets that slid out of it. */
export const record = (
  settings: BreakerSettings,
  buckets: ReadonlyArray<Bucket>,
  failure: boolean,
  now: number
): ReadonlyArray<Bucket> => {
  const start = now - (now % settings.bucketMillis)
  const kept = buckets.filter((bucket) => bucket.start > now - settings.windowMillis)
  const last = kept[kept.length - 1]
  if (last !== undefined && last.start === start) {
    const updated: Bucket = failure
      ? { start, successes: last.successes, failures: last.failures + 1 }
      : { start, successes: last.successes + 1, failures: last.failures }
    return [...kept.slice(0, -1), updated]
  }
  return [...kept, { start, successes: failure ? 0 : 1, failures: failure ? 1 : 0 }]
}

/** Whether the failure-rate rule is on; without it the window is not kept at all. */
const tracksRate = (settings: BreakerSettings): boolean => Number.isFinite(settings.minimumVolume)

/**
 * Whether a normal call's success leaves `state` as it is: closed, no failures in a row to
 * reset and no window to count into. `transition` answers such a success with `state` itself,
 * so a caller may skip the step altogether (the breaker's hot path).
 */
export const successIsNoop = (settings: BreakerSettings, state: BreakerState): boolean =>
  state._tag === "Closed" && state.consecutiveFailures === 0 && !tracksRate(settings)

const rateTripped = (settings: BreakerSettings, buckets: ReadonlyArray<Bucket>): boolean => {
  let failures = 0
  let total = 0
  for (const bucket of buckets) {
    failures += bucket.failures
    total += bucket.failures + bucket.successes
  }
  return total >= settings.minimumVolume && total > 0 && failures / total > settings.failureRateThreshold
}

const isCurrentProbe = (state: BreakerState, permit: Permit): state is Extract<BreakerState, { _tag: "HalfOpen" }> =>
  state._tag === "HalfOpen" && permit._tag === "Probe" && permit.trips === state.trips

/**
 * One step of the machine. `Acquire` returns the permit the caller runs under; the
 * other events return the caller's permit unchanged.
 */
export const transition = (
  settings: BreakerSettings,
  state: BreakerState,
  event: BreakerEvent,
  now: number
): readonly [Permit, BreakerState] => {
  switch (event._tag) {
    case "Reset":
      return [normalPermit, closed]
    case "Acquire": {
      switch (state._tag) {
        case "Closed":
          return [normalPermit, state]
        case "Open":
          return now >= state.until
            ? [{ _tag: "Probe", trips: state.trips }, {
              _tag: "HalfOpen",
              probesInFlight: 1,
              successes: 0,
              trips: state.trips
            }]
            : [{ _tag: "Rejected", retryAfterMillis: state.until - now }, state]
        case "HalfOpen":
          return state.probesInFlight < settings.halfOpenMaxProbes
            ? [{ _tag: "Probe", trips: state.trips }, { ...state, probesInFlight: state.probesInFlight + 1 }]
            : [{ _tag: "Rejected", retryAfterMillis: probeRetryMillis(settings) }, state]
      }
      break
    }
    case "Success": {
      if (state._tag === "Closed" && event.permit._tag === "Normal") {
        // Without a rate window a success in a clean state changes nothing: keep the object.
        if (successIsNoop(settings, state)) return [event.permit, state]
        return [event.permit, {
          _tag: "Closed",
          consecutiveFailures: 0,
          buckets: tracksRate(settings) ? record(settings, state.buckets, false, now) : state.buckets
        }]
      }
      if (isCurrentProbe(state, event.permit)) {
        const successes = state.successes + 1
        return successes >= settings.successThreshold
          ? [event.permit, closed]
          : [event.permit, { ...state, probesInFlight: state.probesInFlight - 1, successes }]
      }
      return [event.permit, state]
    }
    case "Failure": {
      if (state._tag === "Closed" && event.permit._tag === "Normal") {
        const consecutiveFailures = state.consecutiveFailures + 1
        const buckets = tracksRate(settings) ? record(settings, state.buckets, true, now) : state.buckets
        return consecutiveFailures >= settings.consecutiveFailures || rateTripped(settings, buckets)
          ? [event.permit, open(settings, 1, now)]
          : [event.permit, { _tag: "Closed", consecutiveFailures, buckets }]
      }
      if (isCurrentProbe(state, event.permit)) {
        return [event.permit, open(settings, state.trips + 1, now)]
      }
      return [event.permit, state]
    }
    case "Cancel": {
      return isCurrentProbe(state, event.permit)
        ? [event.permit, { ...state, probesInFlight: state.probesInFlight - 1 }]
        : [event.permit, state]
    }
  }
  return [normalPermit, state]
}
