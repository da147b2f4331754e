/**
 * Retry policies as Schedules. A policy is data (`RetryPolicy`, from a tool or from
 * config); `schedule` turns it into exponential backoff with a cap, optional jitter,
 * a retry limit and a predicate on the error.
 */
import { Config, Duration, Predicate, Schedule } from "effect"
import { RetryPolicy } from "../../domain/RetryPolicy.js"

/** Errors that retrying cannot fix: an open breaker, bad input, an unknown tool, a full queue, shutdown. */
const neverRetried = new Set([
  "CircuitOpen",
  "InvalidToolInput",
  "ToolNotFound",
  "QueueFull",
  "Shutdown",
  "DependencyFailed"
])

/** Two quick retries with jitter: what a transient LLM failure (connection reset, 5xx) usually needs. */
export const defaultLlmPolicy = RetryPolicy.make({
  maxRetries: 2,
  initialDelay: Duration.millis(200),
  multiplier: 2,
  maxDelay: Duration.seconds(2),
  jitter: true
})

/** The default retryable-error predicate. Interruption is never retried: it is not an error. */
export const isRetryable = (error: unknown): boolean => {
  if (Predicate.isTagged(error, "ToolFailed") && Predicate.hasProperty(error, "retryable")) {
    return error.retryable !== false
  }
  return !(Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" && neverRetried.has(error._tag))
}

/** The Schedule for `policy`: delays `initial * multiplier^n`, jittered if asked, capped at `maxDelay`. */
export const schedule = <E>(
  policy: RetryPolicy,
  retryable: (error: E) => boolean = isRetryable
): Schedule.Schedule<unknown, E> => {
  const backoff = Schedule.exponential(policy.initialDelay, policy.multiplier)
  const spread = policy.jitter ? Schedule.jittered(backoff) : backoff
  return spread.pipe(
    Schedule.modifyDelay((delay) => Duration.min(delay, policy.maxDelay)),
    Schedule.intersect(Schedule.recurs(policy.maxRetries)),
    Schedule.whileInput(retryable)
  )
}

/**
 * A policy read from config under `prefix`, each variable named in full so errors name it (e.g. `LOOM_RETRY_MAX_RETRIES`,
 * `LOOM_RETRY_INITIAL_DELAY=100 millis`, `_MULTIPLIER`, `_MAX_DELAY`, `_JITTER`).
 */
export const config = (prefix: string, fallback: RetryPolicy = RetryPolicy.none): Config.Config<RetryPolicy> =>
  Config.all({
    maxRetries: Config.integer(`${prefix}_MAX_RETRIES`).pipe(
      Config.validate({ message: "must be 0 or more", validation: (n) => n >= 0 }),
      Config.withDefault(fallback.maxRetries)
    ),
    initialDelay: Config.duration(`${prefix}_INITIAL_DELAY`).pipe(Config.withDefault(fallback.initialDelay)),
    multiplier: Config.number(`${prefix}_MULTIPLIER`).pipe(
      Config.validate({ message: "must be 1 or more", validation: (n) => n >= 1 }),
      Config.withDefault(fallback.multiplier)
    ),
    maxDelay: Config.duration(`${prefix}_MAX_DELAY`).pipe(Config.withDefault(fallback.maxDelay)),
    jitter: Config.boolean(`${prefix}_JITTER`).pipe(Config.withDefault(fallback.jitter))
  }).pipe(
    Config.map((fields) => RetryPolicy.make(fields)),
    Config.withDescription("retry policy")
  )
