/** The outcome of one tool call. A call never fails its batch: it ends in a ToolResult. */
import { Schema } from "effect"
import { ToolError } from "./Errors.js"
import { ToolName } from "./Tool.js"
import { ToolCallId } from "./ToolCall.js"

/**
 * `rejected`: never started (bad input, unknown tool, open breaker, full queue, shutdown);
 * `skipped`: a dependency did not succeed; `timed_out`: the last attempt ran past its deadline.
 */
export const ToolStatus = Schema.Literal("succeeded", "failed", "timed_out", "skipped", "rejected")
export type ToolStatus = typeof ToolStatus.Type

export class ToolResult extends Schema.Class<ToolResult>("ToolResult")({
  callId: ToolCallId,
  tool: ToolName,
  status: ToolStatus,
  output: Schema.optional(Schema.Unknown),
  error: Schema.optional(ToolError),
  /** How many times the handler was started (0 when rejected or skipped). */
  attempts: Schema.NonNegativeInt,
  durationMs: Schema.NonNegative
}) {
  get succeeded(): boolean {
    return this.status === "succeeded"
  }
}
