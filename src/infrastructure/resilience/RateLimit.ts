/**
 * Rate limits: a budget of `limit` units per `interval`, written `60/minute` or
 * `5/10 seconds`, and a limiter holding any number of such budgets by key.
 *
 * The limiter is @effect/experimental's RateLimiter over its in-memory store (token
 * bucket, "delay" mode), not effect's own `RateLimiter`. Measured under TestClock, effect's
 * refills one unit every `ceil(interval / limit)` ms, so 100 000 tokens a minute ran at
 * 60 000, and a cost above the limit waited for ever; it also needs a scope and a refill
 * fiber per budget, and can only charge before a call. The experimental one refills
 * fractionally (100 000 a minute ran at 100 000), keeps every budget in one map with no
 * fiber, takes time from `Clock` (so TestClock drives it), and reserves: a take puts the
 * budget into debt and says how long to wait, so callers are served in order, and units
 * charged after a call (the tokens a reply used) hold back the next callers.
 */
import * as ExperimentalRateLimiter from "@effect/experimental/RateLimiter"
import { Duration, Effect, Either, Option, ParseResult, Schema } from "effect"

/** `limit` units per `interval`: bursts of up to `limit`, then one unit every `interval / limit`. */
export const Rate = Schema.Struct({
  limit: Schema.Int.pipe(Schema.positive()),
  interval: Schema.DurationFromSelf
})
export type Rate = typeof Rate.Type

/** `second`, `minute`, `hour`, `day`, or a duration such as `10 seconds` or `500 millis`. */
const parseInterval = (text: string): Option.Option<Duration.Duration> =>
  Duration.decodeUnknown(/^[a-z]+$/.test(text) ? `1 ${text}` : text).pipe(
    Option.filter((interval) => Duration.greaterThan(interval, Duration.zero) && Duration.isFinite(interval))
  )

/** A rate written `<count>/<interval>`, e.g. `60/minute`, `5/10 seconds`; `Left` says what is wrong. */
export const parse = (text: string): Either.Either<Rate, string> => {
  const match = /^\s*(\d+)\s*\/\s*(.+?)\s*$/.exec(text)
  const limit = Number(match?.[1] ?? "0")
  if (!match || !Number.isSafeInteger(limit) || limit < 1) {
    return Either.left(`expected <count>/<interval> such as 60/minute, got "${text}"`)
  }
  return Option.match(parseInterval(match[2]!), {
    onNone: () => Either.left(`not an interval: "${match[2]}" (second, minute, hour, day, or e.g. 10 seconds)`),
    onSome: (interval) => Either.right({ limit, interval })
  })
}

/** The rate as `parse` reads it. */
export const format = (rate: Rate): string => `${rate.limit}/${Duration.toMillis(rate.interval)} millis`

/** A rate as text, as a config file writes it. */
export const RateFromString = Schema.transformOrFail(Schema.String, Rate, {
  strict: true,
  decode: (text, _, ast) =>
    Either.match(parse(text), {
      onLeft: (message) => ParseResult.fail(new ParseResult.Type(ast, text, message)),
      onRight: ParseResult.succeed
    }),
  encode: (rate) => ParseResult.succeed(format(rate))
})

export interface RateLimiter {
  /**
   * Reserves `cost` units (default 1) of the budget `key`, now, and succeeds with how long
   * until they are there (zero: at once). A cost above the whole budget is charged the
   * whole budget, so it waits at most one interval.
   */
  readonly reserve: (key: string, rate: Rate, cost?: number) => Effect.Effect<Duration.Duration>
  /** `reserve`, then waits. Interrupting the wait does not give the units back. */
  readonly take: (key: string, rate: Rate, cost?: number) => Effect.Effect<void>
}

/** Sleeps for `delay`, if there is any. */
export const wait = (delay: Duration.Duration): Effect.Effect<void> =>
  Duration.isZero(delay) ? Effect.void : Effect.sleep(delay)

/** A limiter with budgets of its own, kept in memory. */
export const make: Effect.Effect<RateLimiter> = Effect.map(
  Effect.provide(ExperimentalRateLimiter.make, ExperimentalRateLimiter.layerStoreMemory),
  (limiter) => {
    const reserve = (key: string, rate: Rate, cost = 1): Effect.Effect<Duration.Duration> =>
      cost <= 0 ? Effect.succeed(Duration.zero) : limiter.consume({
        key,
        limit: rate.limit,
        window: rate.interval,
        tokens: Math.min(Math.ceil(cost), rate.limit),
        algorithm: "token-bucket",
        onExceeded: "delay"
      }).pipe(
        Effect.map((result) => result.delay),
        // the memory store cannot fail, and "delay" never exceeds
        Effect.orDie
      )
    return {
      reserve,
      take: (key, rate, cost) => Effect.flatMap(reserve(key, rate, cost), wait)
    }
  }
)
