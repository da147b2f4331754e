/** A request to run one tool with one input, as an LLM or an API client sends it. */
import { Schema } from "effect"
import { ToolName } from "./Tool.js"

export const ToolCallId = Schema.String.pipe(Schema.minLength(1), Schema.brand("ToolCallId"))
export type ToolCallId = typeof ToolCallId.Type

export class ToolCall extends Schema.Class<ToolCall>("ToolCall")({
  id: ToolCallId,
  tool: ToolName,
  /** Still undecoded: the tool's own input Schema decides what is valid. */
  input: Schema.Unknown
}) {}

/** A call from plain strings, checking the id and the tool name. */
export const toolCall = (id: string, tool: string, input: unknown): ToolCall =>
  new ToolCall({ id: ToolCallId.make(id), tool: ToolName.make(tool), input })
