/**
 * A deadline around an effect without a racing fiber. `Effect.timeout` races the work
 * against a sleeping fiber: two forks per deadline, on every tool attempt. Here the work
 * runs on the caller's own fiber and a timer interrupts that fiber when time is up, so a
 * deadline costs one timer and no fork (measured: 10,000 agent runs went from 3.2-4.2 s with
 * a forked work fiber to about the 2.2-2.6 s they take with no deadline at all).
 *
 * The timer comes from the fiber's `Clock`: Effect's live clock hands out its
 * `ClockScheduler`, so the timer is a scheduled callback; any other clock (`TestClock`)
 * gets a fiber sleeping on that clock, so `TestClock.adjust` still drives every deadline.
 */
import { Clock, Context, Duration, Effect, Exit, Fiber, FiberId } from "effect"
import * as Interruption from "./Interruption.js"

/** Effect's live clock exposes its scheduler, though `Clock.Clock` does not say so. */
interface SchedulingClock extends Clock.Clock {
  readonly scheduler: () => Effect.Effect<Clock.ClockScheduler>
}

const isScheduling = (clock: Clock.Clock): clock is SchedulingClock =>
  typeof (clock as Partial<SchedulingClock>).scheduler === "function"

/**
 * Each scheduling clock's scheduler, once asked for: a deadline then starts its timer and
 * cancels it in plain calls, with no effect of its own (about six effect steps less per
 * tool attempt).
 */
const schedulers = new WeakMap<Clock.Clock, Clock.ClockScheduler>()

/** Runs `task` after `duration` on `clock`; the effect it returns cancels it. */
const timer = (clock: Clock.Clock, duration: Duration.Duration, task: () => void): Effect.Effect<Effect.Effect<void>> =>
  isScheduling(clock)
    ? Effect.map(clock.scheduler(), (scheduler) => {
      schedulers.set(clock, scheduler)
      const cancel = scheduler.unsafeSchedule(task, duration)
      return Effect.sync(cancel)
    })
    : Effect.map(
      // forked from inside the deadline's uninterruptible mask: the sleeper itself must be interruptible
      Effect.forkDaemon(Effect.interruptible(Effect.zipRight(clock.sleep(duration), Effect.sync(task)))),
      (sleeper) => Fiber.interrupt(sleeper)
    )

/**
 * Fails with `onTimeout()` if `self` runs longer than `after`; `self` is interrupted and
 * its finalizers have run by then. An infinite `after` is no deadline at all.
 *
 * The timer interrupts the caller's own fiber under an interruptor id of its own; once
 * `self` has ended, that interruption is taken back (`Interruption.takeBack`), so the
 * caller goes on with the `onTimeout()` failure. An interruption from anyone else stays.
 */
export const within =
  <E1>(after: Duration.DurationInput, onTimeout: () => E1) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | E1, R> => {
    const duration = Duration.decode(after)
    if (!Duration.isFinite(duration)) return self
    return Effect.uninterruptibleMask((restore) =>
      Effect.withFiberRuntime<A, E | E1, R>((fiber) => {
        const timerId = FiberId.unsafeMake()
        let expired = false
        const expire = () => {
          expired = true
          fiber.unsafeInterruptAsFork(timerId)
        }
        /** What `self` ended with, once the timer is cancelled. */
        const settle = (exit: Exit.Exit<A, E>): Effect.Effect<A, E | E1> => {
          if (!expired) return exit
          const outcome: Effect.Effect<A, E | E1> = Exit.isFailure(exit) && Interruption.isOnlyBy(exit.cause, timerId)
            ? Effect.fail(onTimeout())
            : exit
          // the timer may have fired just as `self` ended: its interruption is taken back either way
          return Effect.zipRight(Interruption.takeBack(timerId), outcome)
        }
        const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
        const scheduler = schedulers.get(clock)
        if (scheduler !== undefined) {
          const cancel = scheduler.unsafeSchedule(expire, duration)
          return Effect.flatMap(Effect.exit(restore(self)), (exit) => {
            cancel()
            return settle(exit)
          })
        }
        return Effect.flatMap(
          timer(clock, duration, expire),
          (cancel) =>
            Effect.flatMap(
              Effect.exit(restore(self)),
              (exit) => Effect.zipRight(cancel, Effect.suspend(() => settle(exit)))
            )
        )
      })
    )
  }
