/**
 * A deadline around an effect without a racing fiber. `Effect.timeout` races the work
 * against a sleeping fiber: two forks per deadline, on every tool attempt. Here the work
 * runs on one child fiber and a timer interrupts that fiber when time is up, so a deadline
 * costs one fork and one timer.
 *
 * The timer comes from the fiber's `Clock`: Effect's live clock hands out its
 * `ClockScheduler`, so the timer is a scheduled callback; any other clock (`TestClock`)
 * gets a fiber sleeping on that clock, so `TestClock.adjust` still drives every deadline.
 *
 * FiberRef changes the work makes stay on its fiber, as with any forked fiber: joining them
 * back (what `Effect.timeout` does) costs a walk over every FiberRef per deadline, and the
 * work behind a deadline (a tool call, a request) is isolated from its caller by design.
 */
import type { Clock } from "effect"
import { Cause, Duration, Effect, Exit, Fiber, FiberId } from "effect"

/** Effect's live clock exposes its scheduler, though `Clock.Clock` does not say so. */
interface SchedulingClock extends Clock.Clock {
  readonly scheduler: () => Effect.Effect<Clock.ClockScheduler>
}

const isScheduling = (clock: Clock.Clock): clock is SchedulingClock =>
  typeof (clock as Partial<SchedulingClock>).scheduler === "function"

/** Runs `task` after `duration` on `clock`; the effect it returns cancels it. */
const timer = (clock: Clock.Clock, duration: Duration.Duration, task: () => void): Effect.Effect<Effect.Effect<void>> =>
  isScheduling(clock)
    ? Effect.map(clock.scheduler(), (scheduler) => {
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
 */
export const within =
  <E1>(after: Duration.DurationInput, onTimeout: () => E1) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | E1, R> => {
    const duration = Duration.decode(after)
    if (!Duration.isFinite(duration)) return self
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.fork(restore(self)), (work) => {
        let expired = false
        return Effect.clockWith((clock) =>
          Effect.flatMap(
            timer(clock, duration, () => {
              expired = true
              work.unsafeInterruptAsFork(FiberId.none)
            }),
            (cancel) =>
              restore(Fiber.await(work)).pipe(
                Effect.onInterrupt(() => Effect.zipRight(cancel, Fiber.interrupt(work))),
                Effect.flatMap((exit) => {
                  const outcome: Effect.Effect<A, E | E1> = Exit.isSuccess(exit)
                    ? exit
                    : expired && Cause.isInterruptedOnly(exit.cause)
                    ? Effect.fail(onTimeout())
                    : exit
                  return Effect.zipRight(cancel, outcome)
                })
              )
          )
        )
      })
    )
  }
