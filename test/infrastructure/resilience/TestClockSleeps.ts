/**
 * Waiting for a fiber to reach its wait on the test clock, when what leads there is real
 * I/O (a request over a socket, a child process) that the test clock cannot drive.
 */
import { Chunk, Effect, TestClock, TestServices } from "effect"

/** Some real time, for I/O that must not happen to have its chance. */
export const settle: Effect.Effect<void> = TestServices.provideLive(Effect.sleep("50 millis"))

/** Waits, polling on the live clock, until some fiber sleeps until `at` (millis on the test clock). */
export const sleepingUntil = (at: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let poll = 0; poll < 400; poll++) {
      if (Chunk.some(yield* TestClock.sleeps(), (end) => end === at)) return
      yield* TestServices.provideLive(Effect.sleep("5 millis"))
    }
    return yield* Effect.die(new Error(`no fiber came to sleep until ${at} ms`))
  })
