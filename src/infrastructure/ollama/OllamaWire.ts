/**
 * Ollama's replies as Schemas: what Loom accepts from the wire. ollama-js parses JSON but
 * checks nothing, so every reply is decoded here; a wrong shape is an `LlmBadResponse`.
 */
import { Effect, ParseResult, Schema } from "effect"
import { ChatMessage, LlmToolCall, TokenUsage } from "../../domain/Chat.js"
import { LlmBadResponse } from "../../domain/LlmErrors.js"

const WireToolCall = Schema.Struct({
  function: Schema.Struct({ name: Schema.String, arguments: Schema.Unknown })
})
export type WireToolCall = typeof WireToolCall.Type

const WireMessage = Schema.Struct({
  role: Schema.optionalWith(Schema.String, { default: () => "assistant" }),
  content: Schema.optionalWith(Schema.String, { default: () => "" }),
  tool_calls: Schema.optionalWith(Schema.Array(WireToolCall), { default: () => [] })
})

export const ChatReply = Schema.Struct({
  model: Schema.String,
  message: WireMessage,
  done: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  done_reason: Schema.optional(Schema.String),
  prompt_eval_count: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 0 }),
  eval_count: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 0 }),
  /** Nanoseconds, on the final part only. */
  total_duration: Schema.optional(Schema.NonNegative),
  prompt_eval_duration: Schema.optional(Schema.NonNegative),
  eval_duration: Schema.optional(Schema.NonNegative)
})
export type ChatReply = typeof ChatReply.Type

/** A reply's token counts, and its durations in milliseconds where Ollama reported them (in nanoseconds). */
export const usage = (reply: ChatReply): TokenUsage =>
  new TokenUsage({
    prompt: reply.prompt_eval_count,
    completion: reply.eval_count,
    ...(reply.total_duration === undefined ? {} : { totalMillis: reply.total_duration / 1e6 }),
    ...(reply.prompt_eval_duration === undefined ? {} : { promptMillis: reply.prompt_eval_duration / 1e6 }),
    ...(reply.eval_duration === undefined ? {} : { completionMillis: reply.eval_duration / 1e6 })
  }, true)

export const EmbedReply = Schema.Struct({
  embeddings: Schema.Array(Schema.Array(Schema.Number))
})
export type EmbedReply = typeof EmbedReply.Type

export const TagsReply = Schema.Struct({
  models: Schema.Array(Schema.Struct({ name: Schema.String, size: Schema.optional(Schema.NonNegative) }))
})
export type TagsReply = typeof TagsReply.Type

const raw = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/** Decodes `value` with `schema`, naming the host and the first problem, keeping the raw reply. */
export const decode = <A, I>(schema: Schema.Schema<A, I>, host: string, what: string) => (value: unknown) =>
  Schema.decodeUnknown(schema)(value).pipe(
    Effect.mapError((error) =>
      new LlmBadResponse({
        host,
        message: `${what}: ${ParseResult.TreeFormatter.formatErrorSync(error)}`,
        raw: raw(value).slice(0, 4096)
      })
    )
  )

/** A tool call's arguments must be a JSON object (some models send it as a JSON string). */
export const toolCall = (host: string, call: WireToolCall): Effect.Effect<LlmToolCall, LlmBadResponse> => {
  const bad = (text: string) =>
    new LlmBadResponse({
      host,
      message: `arguments of tool call "${call.function.name}" are not a JSON object`,
      raw: text.slice(0, 4096)
    })
  let args: unknown = call.function.arguments
  if (typeof args === "string") {
    try {
      args = JSON.parse(args)
    } catch {
      return Effect.fail(bad(args as string))
    }
  }
  return typeof args === "object" && args !== null && !Array.isArray(args)
    ? Effect.succeed(new LlmToolCall({ name: call.function.name, arguments: args as Record<string, unknown> }, true))
    : Effect.fail(bad(raw(call.function.arguments)))
}

/** The assistant message of a reply, with its tool calls (of every chunk, for a stream) checked. */
export const message = (host: string, toolCalls: ReadonlyArray<WireToolCall>, content: string) =>
  Effect.map(
    Effect.forEach(toolCalls, (call) => toolCall(host, call)),
    (toolCalls) => new ChatMessage({ role: "assistant", content, toolCalls }, true)
  )
