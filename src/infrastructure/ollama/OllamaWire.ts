/**
 * Ollama's replies as Schemas: what Loom accepts from the wire. ollama-js parses JSON but
 * checks nothing, so every reply is decoded here; a wrong shape is an `LlmBadResponse`.
 */
import { Effect, ParseResult, Schema } from "effect"
import { ChatMessage, LlmToolCall } from "../../domain/Chat.js"
import { LlmBadResponse } from "../../domain/LlmErrors.js"

const WireToolCall = Schema.Struct({
  function: Schema.Struct({ name: Schema.String, arguments: Schema.Unknown })
})

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
  eval_count: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 0 })
})
export type ChatReply = typeof ChatReply.Type

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
export const toolCall = (host: string, call: typeof WireToolCall.Type): Effect.Effect<LlmToolCall, LlmBadResponse> => {
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

/** The assistant message of a reply, with its tool calls checked. */
export const message = (host: string, wire: typeof WireMessage.Type, content: string) =>
  Effect.map(
    Effect.forEach(wire.tool_calls, (call) => toolCall(host, call)),
    (toolCalls) => new ChatMessage({ role: "assistant", content, toolCalls }, true)
  )
