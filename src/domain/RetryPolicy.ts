/**
 * A retry policy as data: what a tool declares or config supplies. The resilience
 * kernel turns it into a Schedule (`Retry.schedule`).
 */
import { Duration, Schema } from "effect"

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
  /** No retries at all. */
  static readonly none = RetryPolicy.make({
    maxRetries: 0,
    initialDelay: Duration.millis(100),
    multiplier: 2,
    maxDelay: Duration.seconds(10),
    jitter: false
  })
}
