/**
 * What a tool is: a name, a description, Schemas for its input and output, a
 * declared kind that decides where it runs, and the handler that does the work.
 */
import type { Duration, Effect } from "effect"
import { Schema } from "effect"
import type { ToolHandlerError } from "./Errors.js"
import type { RetryPolicy } from "./RetryPolicy.js"

export const ToolName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9_.-]{1,128}$/),
  Schema.brand("ToolName"),
  Schema.annotations({ description: "letters, digits, '_', '.', '-'; at most 128 characters" })
)
export type ToolName = typeof ToolName.Type

/**
 * Where a tool runs: `io` on fibers of the event loop, `cpu` on the worker-thread
 * pool, `process` in a child process. Routing follows this declaration only.
 */
export const ToolKind = Schema.Literal("io", "cpu", "process")
export type ToolKind = typeof ToolKind.Type

/** A tool whose input and output are described by the Schemas `In` and `Out`. */
export interface ToolDefinition<
  In extends Schema.Schema.AnyNoContext = Schema.Schema.AnyNoContext,
  Out extends Schema.Schema.AnyNoContext = Schema.Schema.AnyNoContext
> {
  readonly name: ToolName
  readonly description: string
  readonly kind: ToolKind
  readonly input: In
  readonly output: Out
  /** Per-attempt deadline; the executor's default applies when absent. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Overrides the executor's retry policy for this tool. */
  readonly retry?: RetryPolicy | undefined
  readonly handler: (input: Schema.Schema.Type<In>) => Effect.Effect<Schema.Schema.Type<Out>, ToolHandlerError>
}

/** Defines a tool, checking its name and tying the handler's types to its Schemas. */
export const make = <In extends Schema.Schema.AnyNoContext, Out extends Schema.Schema.AnyNoContext>(definition: {
  readonly name: string
  readonly description: string
  readonly kind?: ToolKind
  readonly input: In
  readonly output: Out
  readonly timeout?: Duration.DurationInput
  readonly retry?: RetryPolicy
  readonly handler: (input: Schema.Schema.Type<In>) => Effect.Effect<Schema.Schema.Type<Out>, ToolHandlerError>
}): ToolDefinition<In, Out> => ({
  ...definition,
  name: ToolName.make(definition.name),
  kind: definition.kind ?? "io"
})
