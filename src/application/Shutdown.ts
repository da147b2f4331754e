/**
 * The service's lifecycle: it runs until interrupted (SIGTERM, SIGINT), then shuts down
 * within `LOOM_SHUTDOWN_TIMEOUT` (default: the `shutdown` entry of the Timeouts table).
 * First `ShuttingDown` completes (run-event streams end, so open connections let the
 * server close), then the layers close in reverse, each saying what it did (runs
 * interrupted, pools drained), and the last line says how long it all took. Past the
 * deadline the process fails.
 */
import { Clock, Config, Context, Data, Deferred, Duration, Effect, Exit, Layer, Option, Scope } from "effect"
import * as Timeouts from "../infrastructure/resilience/Timeouts.js"
import { positiveDuration } from "./LoomConfig.js"

/**
 * Completed when the service begins to shut down, before the HTTP server closes:
 * followers of running runs end their streams, so open connections do not hold the
 * shutdown up.
 */
export class ShuttingDown extends Context.Tag("loom/ShuttingDown")<ShuttingDown, Deferred.Deferred<void>>() {}

/** Shutting down took longer than allowed. */
export class ShutdownTooSlow extends Data.TaggedError("ShutdownTooSlow")<{ readonly deadline: Duration.Duration }> {
  override get message() {
    return `shutdown took longer than ${Duration.format(this.deadline)}; exiting with work left undone`
  }
}

/** `LOOM_SHUTDOWN_TIMEOUT`: a duration above zero, or none (then the Timeouts table's). */
export const deadlineConfig = Config.option(positiveDuration("LOOM_SHUTDOWN_TIMEOUT"))

/** Runs `layer` until interrupted, then closes it within the shutdown deadline. */
export const launch = <E, R>(layer: Layer.Layer<never, E, R | ShuttingDown>) =>
  Effect.gen(function*() {
    const timeouts = yield* Timeouts.config
    const deadline = Option.getOrElse(yield* deadlineConfig, () => timeouts.shutdown)
    const signal = yield* Deferred.make<void>()
    return yield* Effect.acquireUseRelease(
      Scope.make(),
      (scope) =>
        Effect.zipRight(
          Layer.buildWithScope(layer.pipe(Layer.provide(Layer.succeed(ShuttingDown, signal))), scope),
          Effect.never
        ),
      (scope, exit) =>
        Effect.gen(function*() {
          // a start-up that failed closes what it had built, silently: its error says what happened
          const stopping = Exit.isInterrupted(exit)
          const started = yield* Clock.currentTimeMillis
          if (stopping) yield* Effect.logInfo(`shutting down (within ${Duration.format(deadline)})`)
          yield* Deferred.succeed(signal, undefined)
          yield* Scope.close(scope, exit)
          const took = (yield* Clock.currentTimeMillis) - started
          if (stopping) yield* Effect.logInfo(`shut down in ${took} ms`)
        }).pipe(
          Effect.disconnect,
          Effect.timeoutFail({ duration: deadline, onTimeout: () => new ShutdownTooSlow({ deadline }) }),
          Effect.tapError((error) => Effect.logError(error.message)),
          Effect.orDie
        )
    )
  })
