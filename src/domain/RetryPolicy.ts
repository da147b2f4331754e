/**
 * A retry policy as data: what a tool declares or config supplies. The resilience
 * kernel turns it into a Schedule (`Retry.schedule`).
 */
import { Duration, Schema } from "effect"

/** A retry policy as a user writes it: any of its fields, durations as strings or Durations. */
export interface RetrySettings {
  readonly maxRetries?: number
  readonly initialDelay?: Duration.DurationInput
  readonly multiplier?: number
  readonly maxDelay?: Duration.DurationInput
  readonly jitter?: boolean
}

export class RetryPolicy extends Schema.Class<RetryPolicy>("RetryPolicy")({
  /** Retries after the first attempt; 0 disables retrying. */
  maxRetries: Schema.NonNegativeInt,
  /** Delay before the first retry. */
  initialDelay: Schema.DurationFromMillis,
  /** Each further delay is the previous one times this. */
  multiplier: Schema.Number.pipe(Schema.greaterThanOrEqualTo(1)),
  /** No delay grows past this. */
  maxDelay: Schema.DurationFromMillis,
  /** Spread delays randomly (80%-120%) so callers do not retry in lockstep. */
  jitter: Schema.Boolean
}) {
  /**
   * A policy from what is given, the rest filled in (3 retries from 100 millis, doubling,
   * at most 10 seconds apart, jittered); durations as Effect reads them (`"50 millis"`).
   */
  static readonly from = (settings: RetrySettings | RetryPolicy): RetryPolicy =>
    settings instanceof RetryPolicy ? settings : new RetryPolicy({
      maxRetries: settings.maxRetries ?? 3,
      initialDelay: Duration.decode(settings.initialDelay ?? "100 millis"),
      multiplier: settings.multiplier ?? 2,
      maxDelay: Duration.decode(settings.maxDelay ?? "10 seconds"),
      jitter: settings.jitter ?? true
    })

  /** No retries at all. */
  static readonly none = RetryPolicy.make({
    maxRetries: 0,
    initialDelay: Duration.millis(100),
    multiplier: 2,
    maxDelay: Duration.seconds(10),
    jitter: false
  })
}
