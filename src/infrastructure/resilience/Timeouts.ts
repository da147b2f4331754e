/**
 * One typed table of deadlines, one per kind of operation, read from config
 * (`LOOM_TIMEOUT_<OPERATION>`, e.g. `LOOM_TIMEOUT_TOOL_DEFAULT=30 seconds`).
 * An exceeded deadline fails with `Timeout { operation, after }`.
 */
import { Config, Context, Duration, Effect, Layer } from "effect"
import { Timeout } from "../../domain/Errors.js"
import * as Deadline from "./Deadline.js"

export const operations = [
  "llm.chat",
  "llm.embed",
  "tool.default",
  "mcp.connect",
  "mcp.list",
  "mcp.call",
  "process",
  "shutdown"
] as const
export type Operation = typeof operations[number]

export type Table = { readonly [K in Operation]: Duration.Duration }

export const defaults: Table = {
  "llm.chat": Duration.minutes(5),
  "llm.embed": Duration.seconds(60),
  "tool.default": Duration.seconds(30),
  "mcp.connect": Duration.seconds(10),
  "mcp.list": Duration.seconds(10),
  "mcp.call": Duration.seconds(60),
  "process": Duration.seconds(60),
  "shutdown": Duration.seconds(30)
}

const envName = (operation: Operation): string => `LOOM_TIMEOUT_${operation.replace(".", "_").toUpperCase()}`

/** Reads every deadline, falling back to `defaults`. */
export const config: Config.Config<Table> = Config.all(
  Object.fromEntries(
    operations.map((
      operation
    ) => [operation, Config.duration(envName(operation)).pipe(Config.withDefault(defaults[operation]))])
  ) as { readonly [K in Operation]: Config.Config<Duration.Duration> }
)

export class Timeouts extends Context.Tag("loom/Timeouts")<Timeouts, Table>() {
  static readonly Default = Layer.succeed(Timeouts, defaults)
  static readonly layerConfig = Layer.effect(Timeouts, config)
  static readonly layer = (overrides: Partial<Table>) => Layer.succeed(Timeouts, { ...defaults, ...overrides })
}

/**
 * Fails `self` with `Timeout { operation, after }` if it runs longer than `after`; `self` is
 * interrupted. One fork and one timer (`Deadline`), not `Effect.timeout`'s two racing fibers.
 */
export const within =
  (operation: string, after: Duration.DurationInput) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Timeout, R> =>
    Deadline.within(after, () => new Timeout({ operation, after: Duration.decode(after) }))(self)

/** `within`, taking the deadline for `operation` from the `Timeouts` table. */
export const apply =
  (operation: Operation) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Timeout, R | Timeouts> =>
    Effect.flatMap(Timeouts, (table) => within(operation, table[operation])(self))
