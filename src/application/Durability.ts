/**
 * How a unit of a run's work is executed: directly (the default, for a run that lives in
 * one process), or as a durable Activity of the run's @effect/workflow execution, whose
 * result the engine keeps, so a replay after a crash gets it back instead of running the
 * work again (see `DurableRuns`). The workflow engine runs each node through it; the
 * agent runtime each model call and tool call.
 *
 * A name is unique within its run and the same on every replay ("3/coder",
 * "3/coder/turn-1/model"), and the value goes through `success`/`error` on its way to
 * storage, so what comes back from a replay is what the work gave.
 */
import type { Schema } from "effect"
import { Context, Effect, Option } from "effect"

export interface Unit<A, E, SA, SE> {
  readonly name: string
  readonly success: Schema.Schema<A, SA>
  readonly error: Schema.Schema<E, SE>
  readonly execute: Effect.Effect<A, E>
}

export interface Service {
  /** Whether work goes through the engine (a caller may skip building `Unit`s when it does not). */
  readonly durable: boolean
  readonly run: <A, E, SA, SE>(unit: Unit<A, E, SA, SE>) => Effect.Effect<A, E>
  /**
   * Waits for the value named `name` (unique within the run; not prefixed), given from
   * outside the run: `onWait` runs when it is not there yet, then the run suspends until
   * it is. Only a durable run can wait; `direct` dies (callers check `durable` first).
   */
  readonly wait: <A, I>(name: string, schema: Schema.Schema<A, I>, onWait: Effect.Effect<void>) => Effect.Effect<A>
  /** The value named `name` if it was given already, without waiting for it (`direct`: never). */
  readonly peek: <A, I>(name: string, schema: Schema.Schema<A, I>) => Effect.Effect<Option.Option<A>>
  /** The same durability for work nested under `prefix`: its units are named `prefix/...`. */
  readonly within: (prefix: string) => Service
}

/** Work runs as it is: nothing is kept. */
export const direct: Service = {
  durable: false,
  run: (unit) => unit.execute,
  wait: (name) => Effect.dieMessage(`${name}: a run that is not durable cannot wait`),
  peek: () => Effect.succeed(Option.none()),
  within: () => direct
}

export class Durability extends Context.Reference<Durability>()("loom/Durability", {
  defaultValue: (): Service => direct
}) {}

/** Runs `unit` with the current durability. */
export const run = <A, E, SA, SE>(unit: Unit<A, E, SA, SE>): Effect.Effect<A, E> =>
  Effect.flatMap(Durability, (durability) => durability.run(unit))

/** Runs `effect` with units named under `prefix`. */
export const within = (prefix: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    Durability,
    (durability) => durability.durable ? Effect.provideService(effect, Durability, durability.within(prefix)) : effect
  )
