/**
 * Ollama's chat replies as Loom's responses, read whole or streamed, in one place so both
 * treat tool calls alike: those Ollama sends (in a stream, often in a chunk before the
 * last) and those the model wrote as text (TextToolCall). Tokens are counted here.
 */
import { Effect, Metric, Option, Stream } from "effect"
import type { ChatChunk } from "../../domain/Chat.js"
import { ChatMessage, ChatResponse } from "../../domain/Chat.js"
import type { LlmError } from "../../domain/LanguageModel.js"
import { LlmBadResponse } from "../../domain/LlmErrors.js"
import * as MetricTags from "../resilience/MetricTags.js"
import { completionTokens, promptTokens } from "./OllamaMetrics.js"
import type * as OllamaWire from "./OllamaWire.js"
import { message, usage } from "./OllamaWire.js"
import * as TextToolCall from "./TextToolCall.js"

/** Who answered, and the names of the tools the request offered (the only ones a written call may name). */
export interface Origin {
  readonly host: string
  readonly offered: ReadonlyArray<string>
}

const recordTokens = (response: ChatResponse) =>
  Effect.zipRight(
    Metric.incrementBy(MetricTags.tagged(promptTokens, { model: response.model }), response.usage.prompt),
    Metric.incrementBy(MetricTags.tagged(completionTokens, { model: response.model }), response.usage.completion)
  )

/** A message without tool calls whose text is calls of offered tools becomes those calls. */
const withWrittenCalls = (offered: ReadonlyArray<string>) => (reply: ChatMessage): ChatMessage =>
  reply.toolCalls.length > 0 ? reply : Option.match(TextToolCall.parse(reply.content, offered), {
    onNone: () => reply,
    onSome: (toolCalls) => new ChatMessage({ role: "assistant", content: "", toolCalls }, true)
  })

/** The response to a reply whose text is `content` and whose tool calls are `toolCalls`; its tokens recorded. */
const toResponse = (
  origin: Origin,
  reply: OllamaWire.ChatReply,
  content: string,
  toolCalls: ReadonlyArray<OllamaWire.WireToolCall>
) =>
  message(origin.host, toolCalls, content).pipe(
    Effect.map(withWrittenCalls(origin.offered)),
    // decoded already: skip re-validating on construction
    Effect.map((message) =>
      new ChatResponse({
        model: reply.model,
        message,
        usage: usage(reply),
        ...(reply.done_reason === undefined ? {} : { doneReason: reply.done_reason }),
        host: origin.host
      }, true)
    ),
    Effect.tap(recordTokens)
  )

/** A reply read whole. */
export const whole = (origin: Origin, reply: OllamaWire.ChatReply): Effect.Effect<ChatResponse, LlmError> =>
  toResponse(origin, reply, reply.message.content, reply.message.tool_calls)

const delta = (content: string): ReadonlyArray<ChatChunk> => content.length > 0 ? [{ _tag: "Delta", content }] : []

/**
 * A streamed reply as chunks: a Delta per piece of text, then one Done with the whole
 * message, its tool calls gathered from every chunk. When tools were offered, text that
 * could still be a written tool call is held back until it cannot, or until the end, where
 * it is either the call (and no Delta) or one last Delta. A reply that ends before its
 * final part is LlmBadResponse.
 */
export const streamed = (
  origin: Origin,
  parts: Stream.Stream<OllamaWire.ChatReply, LlmError>
): Stream.Stream<ChatChunk, LlmError> =>
  Stream.suspend(() => {
    let content = ""
    let held = ""
    let holding = origin.offered.length > 0
    const toolCalls: Array<OllamaWire.WireToolCall> = []
    let finished = false
    const release = (piece: string): ReadonlyArray<ChatChunk> => {
      if (!holding) return delta(piece)
      held += piece
      if (TextToolCall.couldBe(held)) return []
      holding = false
      return delta(held)
    }
    const chunksOf = (reply: OllamaWire.ChatReply): Effect.Effect<ReadonlyArray<ChatChunk>, LlmError> => {
      content += reply.message.content
      toolCalls.push(...reply.message.tool_calls)
      const deltas = release(reply.message.content)
      if (!reply.done) return Effect.succeed(deltas)
      finished = true
      return Effect.map(toResponse(origin, reply, content, toolCalls), (response): ReadonlyArray<ChatChunk> => [
        ...deltas,
        ...(holding && response.message.content.length > 0 ? delta(held) : []),
        { _tag: "Done", response }
      ])
    }
    return parts.pipe(
      Stream.mapConcatEffect(chunksOf),
      Stream.concat(Stream.suspend(() =>
        finished
          ? Stream.empty
          : Stream.fail(
            new LlmBadResponse({ host: origin.host, message: "the stream ended before its final chunk", raw: content })
          )
      ))
    )
  })
