/**
 * A run as a Stream of its events, the shape agent and workflow runs share: the run's
 * body goes in a fiber the consumer's scope owns (a consumer that stops interrupts it)
 * and emits into a queue; its typed failure, or a defect turned into one, becomes the
 * terminal event, so the stream always ends and never fails, except that a body
 * interrupted from within (a durable run suspending) fails it with that interruption.
 */
import { Cause, Deferred, Effect, Option, Queue, Stream } from "effect"

export const stream = <A, E>(
  body: (emit: (event: A) => Effect.Effect<void>) => Effect.Effect<void, E>,
  options: {
    /** Emits the terminal event for `error` (and records it where the run keeps state). */
    readonly onFailure: (error: E, emit: (event: A) => Effect.Effect<void>) => Effect.Effect<void>
    /** The run's typed error for a defect (a bug, or a store that failed). */
    readonly crashed: (message: string) => E
    readonly isTerminal: (event: A) => boolean
  }
): Stream.Stream<A> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const events = yield* Queue.unbounded<A>()
    const stopped = yield* Deferred.make<never>()
    const emit = (event: A) => Queue.offer(events, event)
    yield* body(emit).pipe(
      Effect.catchAllCause((cause) => {
        // interrupted: by the consumer (it is gone), or by itself (a durable run suspending to wait): the stream
        // fails with the interruption, so its consumer does not wait for events that will not come, and knows why
        if (Cause.isInterruptedOnly(cause)) {
          return Effect.zipRight(Deferred.interrupt(stopped), Effect.failCause(cause))
        }
        return Option.match(Cause.failureOption(cause), {
          onSome: (error) => options.onFailure(error, emit),
          onNone: () =>
            Effect.zipRight(
              Effect.logError("run crashed", cause),
              options.onFailure(options.crashed(Cause.pretty(cause).split("\n")[0] ?? "defect"), emit)
            )
        })
      }),
      Effect.forkScoped
    )
    return Stream.fromQueue(events).pipe(
      Stream.takeUntil(options.isTerminal),
      Stream.interruptWhen(Deferred.await(stopped))
    )
  }))
