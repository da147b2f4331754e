/**
 * A server's `Retry-After` (RFC 9110 §10.2.3) and a retry schedule that honours it: the
 * retry waits for the longer of the policy's delay and the server's, so a host that says
 * "not for 2 s" is not asked again sooner.
 *
 * The server's wait is capped at `maxRetryAfter` (60 s), not at the policy's `maxDelay`:
 * that cap is about Loom's own backoff (2 s by default) and would retry a busy host before
 * it asked; a minute bounds how long one request is held while still covering what
 * rate-limited servers and proxies usually ask for. A host asking for more gets asked
 * again after a minute; the retry limit and its breaker bound what follows.
 */
import { Duration, Option, Schedule } from "effect"
import type { RetryPolicy } from "../../domain/RetryPolicy.js"
import * as Retry from "./Retry.js"

export const maxRetryAfter = Duration.seconds(60)

/**
 * The wait a `Retry-After` value asks for (delay-seconds or an HTTP date), capped at
 * `maxRetryAfter`; none when it does not parse. A date is read against the reply's own
 * `Date` when it has one (the server's clock against the server's clock, so skew does not
 * matter), else against `now`. A date in the past is no wait.
 */
export const parse = (value: string, now: number, date?: string): Option.Option<Duration.Duration> => {
  const text = value.trim()
  const since = date === undefined || Number.isNaN(Date.parse(date)) ? now : Date.parse(date)
  // every HTTP date form begins with the day's name; anything else (e.g. "-5", a year to Date.parse) is not one
  const millis = /^\d+$/.test(text)
    ? Number(text) * 1000
    : /^[A-Za-z]{3}/.test(text)
    ? Date.parse(text) - since
    : NaN
  return Number.isNaN(millis)
    ? Option.none()
    : Option.some(Duration.min(Duration.millis(Math.max(0, millis)), maxRetryAfter))
}

/**
 * `Retry.schedule(policy, retryable)`, each delay raised to the failed attempt's
 * `retryAfter` when it has one. Time is the `Clock`'s, so TestClock drives it.
 */
export const schedule = <E>(
  policy: RetryPolicy,
  retryable: (error: E) => boolean,
  retryAfter: (error: E) => Option.Option<Duration.Duration>
): Schedule.Schedule<unknown, E> =>
  Retry.schedule(policy, retryable).pipe(
    Schedule.intersect(Schedule.identity<E>()),
    Schedule.modifyDelay(([, error], delay) =>
      Option.match(retryAfter(error), { onNone: () => delay, onSome: (wait) => Duration.max(delay, wait) })
    )
  )
