/**
 * Waits on the live clock for something a real socket does (a connection closing, a
 * request arriving), while the test clock keeps controlling Loom's own timers.
 */
import { Effect, Schedule, TestServices } from "effect"

export const eventually = (condition: () => boolean, what: string): Effect.Effect<void> =>
  Effect.suspend(() => condition() ? Effect.void : Effect.fail(what)).pipe(
    Effect.retry(Schedule.spaced("5 millis").pipe(Schedule.intersect(Schedule.recurs(400)))),
    TestServices.provideLive,
    Effect.orDieWith((what) => new Error(`timed out waiting for: ${what}`))
  )
