/**
 * The tagged errors every layer of Loom shares. They are Schema classes because
 * they cross boundaries: into a ToolResult, an HTTP reply, a worker thread.
 */
import { Duration, Schema } from "effect"

/** A tool ran and failed. `retryable: false` tells the retry policy not to try again. */
export class ToolFailed extends Schema.TaggedError<ToolFailed>()("ToolFailed", {
  tool: Schema.String,
  message: Schema.String,
  retryable: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {}

/** A tool's input did not decode; `field` is the path of the offending field ("" for the root). */
export class InvalidToolInput extends Schema.TaggedError<InvalidToolInput>()("InvalidToolInput", {
  tool: Schema.String,
  field: Schema.String,
  message: Schema.String
}) {}

/** A call named a tool the registry does not know. */
export class ToolNotFound extends Schema.TaggedError<ToolNotFound>()("ToolNotFound", {
  tool: Schema.String
}) {}

/** An operation ran past its deadline. */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  operation: Schema.String,
  after: Schema.DurationFromMillis
}) {
  override get message() {
    return `${this.operation} timed out after ${Math.round(Duration.toMillis(this.after))} ms`
  }
}

/** A circuit breaker is open: no call was made. */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>()("CircuitOpen", {
  service: Schema.String,
  retryAfter: Schema.DurationFromMillis
}) {}

/** A bounded queue with the `reject` policy was full. */
export class QueueFull extends Schema.TaggedError<QueueFull>()("QueueFull", {
  capacity: Schema.Int
}) {}

/** The component is shutting down and takes no more work (or cut this work off). */
export class Shutdown extends Schema.TaggedError<Shutdown>()("Shutdown", {
  component: Schema.String
}) {}

/** A graph node did not run because a node it depends on did not succeed. */
export class DependencyFailed extends Schema.TaggedError<DependencyFailed>()("DependencyFailed", {
  node: Schema.String,
  dependency: Schema.String
}) {}

/** Every error a tool call can end with. */
export const ToolError = Schema.Union(
  ToolFailed,
  InvalidToolInput,
  ToolNotFound,
  Timeout,
  CircuitOpen,
  QueueFull,
  Shutdown,
  DependencyFailed
)
export type ToolError = typeof ToolError.Type

/** The errors a tool's own handler may fail with. */
export type ToolHandlerError = ToolFailed | Timeout | CircuitOpen | QueueFull | Shutdown

/** A tool graph that cannot run: a cycle, an unknown dependency or a repeated node id. */
export class InvalidGraph extends Schema.TaggedError<InvalidGraph>()("InvalidGraph", {
  reason: Schema.Literal("cycle", "unknown_dependency", "duplicate_node"),
  nodes: Schema.Array(Schema.String),
  message: Schema.String
}) {}
