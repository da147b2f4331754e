/**
 * What a tool is: a name, a description, Schemas for its input and output, and a
 * declared kind that decides where it runs. An `io` tool carries its handler (it runs
 * on a fiber); a `cpu` tool describes its work as a task for a worker thread; a
 * `process` tool describes a command for a child process and how to read its result.
 * The executor routes by the kind alone.
 */
import type { Duration } from "effect"
import { Effect, ParseResult, Schema } from "effect"
import type { CpuTask } from "./Cpu.js"
import type { ToolError, ToolHandlerError } from "./Errors.js"
import { ToolFailed } from "./Errors.js"
import type { ProcessResult } from "./Process.js"
import { ProcessSpec } from "./Process.js"
import type { RetrySettings } from "./RetryPolicy.js"
import { RetryPolicy } from "./RetryPolicy.js"

export const ToolName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9_.-]{1,128}$/),
  Schema.brand("ToolName"),
  Schema.annotations({ description: "letters, digits, '_', '.', '-'; at most 128 characters" })
)
export type ToolName = typeof ToolName.Type

const isToolName = Schema.is(ToolName)

/**
 * `name` as a ToolName; a name that is not a valid tool name (from a model or a client)
 * becomes one no tool has, so the call ends ToolNotFound instead of a crash.
 */
export const toolNameOrUnknown = (name: string): ToolName =>
  isToolName(name) ? name : ToolName.make("invalid-tool-name")

/**
 * Where a tool runs: `io` on fibers of the event loop, `cpu` on the worker-thread
 * pool, `process` in a child process. Routing follows this declaration only.
 */
export const ToolKind = Schema.Literal("io", "cpu", "process")
export type ToolKind = typeof ToolKind.Type

/** What every kind of tool declares. */
interface Common<In extends Schema.Schema.AnyNoContext, Out extends Schema.Schema.AnyNoContext> {
  readonly name: ToolName
  readonly description: string
  readonly input: In
  readonly output: Out
  /** Per-attempt deadline; the executor's default applies when absent. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Overrides the executor's retry policy for this tool. */
  readonly retry?: RetryPolicy | undefined
  /** Which of this tool's errors are worth another attempt; overrides the executor's predicate. */
  readonly isRetryable?: ((error: ToolError) => boolean) | undefined
}

/** Runs on a fiber: for work that waits (network, files, timers). */
export interface IoTool<In extends Schema.Schema.AnyNoContext, Out extends Schema.Schema.AnyNoContext>
  extends Common<In, Out>
{
  readonly kind: "io"
  readonly handler: (input: Schema.Schema.Type<In>) => Effect.Effect<Schema.Schema.Type<Out>, ToolHandlerError>
}

/** Runs on a worker thread: the task's result is the tool's output. */
export interface CpuTool<In extends Schema.Schema.AnyNoContext, Out extends Schema.Schema.AnyNoContext>
  extends Common<In, Out>
{
  readonly kind: "cpu"
  readonly task: (input: Schema.Schema.Type<In>) => CpuTask
}

/** Runs in a child process: `command` says what to run, `parse` reads the output from its result. */
export interface ProcessTool<In extends Schema.Schema.AnyNoContext, Out extends Schema.Schema.AnyNoContext>
  extends Common<In, Out>
{
  readonly kind: "process"
  readonly command: (input: Schema.Schema.Type<In>) => ProcessSpec
  readonly parse: (result: ProcessResult) => Effect.Effect<Schema.Schema.Type<Out>, ToolFailed>
}

/** A tool whose input and output are described by the Schemas `In` and `Out`. */
export type ToolDefinition<
  In extends Schema.Schema.AnyNoContext = Schema.Schema.AnyNoContext,
  Out extends Schema.Schema.AnyNoContext = Schema.Schema.AnyNoContext
> = IoTool<In, Out> | CpuTool<In, Out> | ProcessTool<In, Out>

type Fields<In extends Schema.Schema.AnyNoContext, Out extends Schema.Schema.AnyNoContext> = {
  readonly name: string
  readonly description: string
  readonly input: In
  readonly output: Out
  readonly timeout?: Duration.DurationInput
  /** A policy, or just the fields that differ from `RetryPolicy.from`'s defaults. */
  readonly retry?: RetryPolicy | RetrySettings
  readonly isRetryable?: (error: ToolError) => boolean
}

/** The fields every kind shares, normalised: a checked name, a complete retry policy. */
const common = <In extends Schema.Schema.AnyNoContext, Out extends Schema.Schema.AnyNoContext>(
  definition: Fields<In, Out>
) => ({
  name: ToolName.make(definition.name),
  retry: definition.retry === undefined ? undefined : RetryPolicy.from(definition.retry)
})

/** Defines an `io` tool, checking its name and tying the handler's types to its Schemas. */
export const make = <In extends Schema.Schema.AnyNoContext, Out extends Schema.Schema.AnyNoContext>(
  definition: Fields<In, Out> & {
    readonly handler: (input: Schema.Schema.Type<In>) => Effect.Effect<Schema.Schema.Type<Out>, ToolHandlerError>
  }
): IoTool<In, Out> => ({ ...definition, ...common(definition), kind: "io" })

/** Defines a `cpu` tool: `task` turns a decoded input into the work sent to a worker thread. */
export const cpu = <In extends Schema.Schema.AnyNoContext, Out extends Schema.Schema.AnyNoContext>(
  definition: Fields<In, Out> & { readonly task: (input: Schema.Schema.Type<In>) => CpuTask }
): CpuTool<In, Out> => ({ ...definition, ...common(definition), kind: "cpu" })

/**
 * Defines a `process` tool. A command that sets no stdin is given the encoded input as
 * JSON on stdin; by default the child must exit 0 with its output as JSON on stdout
 * (see `parseJsonOutput`).
 */
export const process = <In extends Schema.Schema.AnyNoContext, Out extends Schema.Schema.AnyNoContext>(
  definition: Fields<In, Out> & {
    readonly command: (input: Schema.Schema.Type<In>) => ProcessSpec
    readonly parse?: (result: ProcessResult) => Effect.Effect<Schema.Schema.Type<Out>, ToolFailed>
  }
): ProcessTool<In, Out> => ({
  ...definition,
  ...common(definition),
  kind: "process",
  command: (input) => {
    const spec = definition.command(input)
    return spec.stdin !== undefined
      ? spec
      : new ProcessSpec({ ...spec, stdin: JSON.stringify(Schema.encodeSync(definition.input)(input)) })
  },
  parse: definition.parse ?? parseJsonOutput(definition.name, definition.output)
})

/** The last `n` characters of a stream, to say why a process failed without flooding the error. */
const tail = (text: string, n = 500) => text.length > n ? `…${text.slice(-n)}` : text

/** Reads a process's output as JSON on stdout; a non-zero exit or cut output is a failure. */
export const parseJsonOutput =
  <Out extends Schema.Schema.AnyNoContext>(tool: string, output: Out) =>
  (result: ProcessResult): Effect.Effect<Schema.Schema.Type<Out>, ToolFailed> => {
    if (result.exitCode !== 0) {
      return Effect.fail(
        new ToolFailed({
          tool,
          message: `process exited with ${result.signal ?? `code ${result.exitCode}`}: ${tail(result.stderr)}`,
          retryable: false
        })
      )
    }
    if (result.truncated) {
      return Effect.fail(new ToolFailed({ tool, message: "process output exceeded the cap", retryable: false }))
    }
    return (Schema.decodeUnknown(Schema.parseJson(output))(result.stdout) as Effect.Effect<
      Schema.Schema.Type<Out>,
      ParseResult.ParseError
    >).pipe(
      Effect.mapError((error) =>
        new ToolFailed({
          tool,
          message: `process output is not the tool's output: ${ParseResult.TreeFormatter.formatErrorSync(error)}`,
          retryable: false
        })
      )
    )
  }
