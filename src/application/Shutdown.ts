/**
 * The service's lifecycle: it runs until interrupted (SIGTERM, SIGINT), then shuts down
 * within `LOOM_SHUTDOWN_TIMEOUT` (default: the `shutdown` entry of the Timeouts table).
 * First `ShuttingDown` completes (run-event streams end, so open connections let the
 * server close), then the layers close in reverse. Past the deadline the process fails.
 */
import { Config, Context, Data, Deferred, Duration, Effect, Layer, Scope } from "effect"
import * as Timeouts from "../infrastructure/resilience/Timeouts.js"

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

/** Runs `layer` until interrupted, then closes it within the shutdown deadline. */
export const launch = <E, R>(layer: Layer.Layer<never, E, R | ShuttingDown>) =>
  Effect.gen(function*() {
    const timeouts = yield* Timeouts.config
    const deadline = yield* Config.duration("LOOM_SHUTDOWN_TIMEOUT").pipe(Config.withDefault(timeouts.shutdown))
    const signal = yield* Deferred.make<void>()
    return yield* Effect.acquireUseRelease(
      Scope.make(),
      (scope) =>
        Effect.zipRight(
          Layer.buildWithScope(layer.pipe(Layer.provide(Layer.succeed(ShuttingDown, signal))), scope),
          Effect.never
        ),
      (scope, exit) =>
        Deferred.succeed(signal, undefined).pipe(
          Effect.zipRight(Scope.close(scope, exit)),
          Effect.disconnect,
          Effect.timeoutFail({ duration: deadline, onTimeout: () => new ShutdownTooSlow({ deadline }) }),
          Effect.tapError((error) => Effect.logError(error.message)),
          Effect.orDie
        )
    )
  })
