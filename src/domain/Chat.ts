/**
 * The conversation data a language model takes and returns: messages, tool specs,
 * tool calls, token counts. Independent of any backend's wire format.
 */
import type { Schema as S } from "effect"
import { JSONSchema, Schema } from "effect"
import type { LlmBadStructuredOutput } from "./LlmErrors.js"
import type { ToolDefinition } from "./Tool.js"

export const Role = Schema.Literal("system", "user", "assistant", "tool")
export type Role = typeof Role.Type

/** A tool call the model asked for; `arguments` is a JSON object, not yet checked against the tool's schema. */
export class LlmToolCall extends Schema.Class<LlmToolCall>("LlmToolCall")({
  name: Schema.String,
  arguments: Schema.Record({ key: Schema.String, value: Schema.Unknown })
}) {}

export class ChatMessage extends Schema.Class<ChatMessage>("ChatMessage")({
  role: Role,
  content: Schema.String,
  toolCalls: Schema.optionalWith(Schema.Array(LlmToolCall), { default: () => [] }),
  /** For `tool` messages: which tool's result this is. */
  toolName: Schema.optional(Schema.String)
}) {}

/** A tool as the model sees it: a name, a description and the JSON Schema of its input. */
export class ToolSpec extends Schema.Class<ToolSpec>("ToolSpec")({
  name: Schema.String,
  description: Schema.String,
  parameters: Schema.Record({ key: Schema.String, value: Schema.Unknown })
}) {}

/** The model's view of a tool, with its JSON Schema derived from the tool's input Schema. */
export const toolSpec = (tool: ToolDefinition): ToolSpec =>
  new ToolSpec({
    name: tool.name,
    description: tool.description,
    parameters: JSONSchema.make(tool.input as S.Schema<unknown, unknown>) as unknown as Record<string, unknown>
  })

/** Sampling options passed through to the backend. */
export class ChatOptions extends Schema.Class<ChatOptions>("ChatOptions")({
  temperature: Schema.optional(Schema.Number),
  topP: Schema.optional(Schema.Number),
  seed: Schema.optional(Schema.Int),
  numCtx: Schema.optional(Schema.Int),
  numPredict: Schema.optional(Schema.Int),
  stop: Schema.optional(Schema.Array(Schema.String))
}) {}

/** A JSON Schema, as a plain JSON object. */
export const JsonSchemaObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** What the reply must be: any JSON (`"json"`), or JSON matching a JSON Schema. */
export const ResponseFormat = Schema.Union(Schema.Literal("json"), JsonSchemaObject)
export type ResponseFormat = typeof ResponseFormat.Type

export class ChatRequest extends Schema.Class<ChatRequest>("ChatRequest")({
  model: Schema.NonEmptyString,
  messages: Schema.Array(ChatMessage),
  tools: Schema.optionalWith(Schema.Array(ToolSpec), { default: () => [] }),
  options: Schema.optional(ChatOptions),
  /** Constrains the reply to JSON; `generateObject` sets it from its Schema. */
  format: Schema.optional(ResponseFormat),
  /**
   * How long the backend keeps the model loaded after this request, over its configured
   * default (`Duration.zero` unloads it at once, `Duration.infinity` keeps it loaded).
   */
  keepAlive: Schema.optional(Schema.Duration)
}) {}

/**
 * What one chat cost the backend: tokens read and written, and (when the backend reports
 * them, as Ollama does) how long it spent in all, reading the prompt and generating.
 */
export class TokenUsage extends Schema.Class<TokenUsage>("TokenUsage")({
  prompt: Schema.NonNegativeInt,
  completion: Schema.NonNegativeInt,
  totalMillis: Schema.optional(Schema.NonNegative),
  promptMillis: Schema.optional(Schema.NonNegative),
  completionMillis: Schema.optional(Schema.NonNegative)
}) {}

export class ChatResponse extends Schema.Class<ChatResponse>("ChatResponse")({
  model: Schema.String,
  message: ChatMessage,
  usage: TokenUsage,
  doneReason: Schema.optional(Schema.String),
  /** Which backend host answered. */
  host: Schema.String
}) {}

/** A piece of a streamed answer: text as it arrives, then the whole response once. */
export type ChatChunk =
  | { readonly _tag: "Delta"; readonly content: string }
  | { readonly _tag: "Done"; readonly response: ChatResponse }

/** A structured reply: the value decoded from the reply's JSON, and the response it was read from. */
export interface ObjectResponse<A> {
  readonly value: A
  readonly response: ChatResponse
}

/**
 * A piece of a streamed structured reply: text as it arrives; `Retry` when the finished
 * text did not decode and the model is asked again (the text so far is void); then one `Done`.
 */
export type ObjectChunk<A> =
  | { readonly _tag: "Delta"; readonly content: string }
  | { readonly _tag: "Retry"; readonly error: LlmBadStructuredOutput }
  | { readonly _tag: "Done"; readonly value: A; readonly response: ChatResponse }

export class ModelInfo extends Schema.Class<ModelInfo>("ModelInfo")({
  name: Schema.String,
  sizeBytes: Schema.optional(Schema.NonNegative),
  host: Schema.String
}) {}
