/**
 * The port through which agents talk to a language model. Ollama is one adapter (over
 * HTTP, in infrastructure/ollama); `LanguageModel.layerTest` is a scripted model in
 * memory, for tests that are not about the transport.
 */
import { Context, Effect, Layer, Ref, Stream } from "effect"
import type { ChatChunk, ChatRequest } from "./Chat.js"
import { ChatMessage, ChatResponse, LlmToolCall, ModelInfo, TokenUsage } from "./Chat.js"
import type { CircuitOpen } from "./Errors.js"
import type { LlmTimeout, LlmUnavailable } from "./LlmErrors.js"
import { LlmBadResponse, ModelNotFound } from "./LlmErrors.js"

export type LlmError = LlmUnavailable | LlmTimeout | LlmBadResponse | ModelNotFound | CircuitOpen

export interface Service {
  readonly chat: (request: ChatRequest) => Effect.Effect<ChatResponse, LlmError>
  /** Text deltas as they are generated, ending with one `Done` chunk holding the whole response. */
  readonly chatStream: (request: ChatRequest) => Stream.Stream<ChatChunk, LlmError>
  /** One vector per text, in order. */
  readonly embed: (model: string, texts: ReadonlyArray<string>) => Effect.Effect<
    ReadonlyArray<ReadonlyArray<number>>,
    LlmError
  >
  readonly models: Effect.Effect<ReadonlyArray<ModelInfo>, LlmError>
}

/** A scripted answer: text, and the tool calls the model asks for (arguments not yet checked by any tool). */
export interface Reply {
  readonly content: string
  readonly toolCalls?: ReadonlyArray<{ readonly name: string; readonly arguments: { readonly [key: string]: unknown } }>
}

/** What a scripted model answers: a function of each request (which may fail), or replies taken in turn. */
export type Script =
  | ((request: ChatRequest) => Reply | Effect.Effect<Reply, LlmError>)
  | ReadonlyArray<Reply>

export interface TestOptions {
  /** The models it has: others are `ModelNotFound` (default: it answers for any model and lists none). */
  readonly models?: ReadonlyArray<string>
  /** Length of the embedding vectors (default 8). */
  readonly dimensions?: number
}

const testHost = "memory"

const words = (text: string): number => text.split(/\s+/).filter((word) => word.length > 0).length

/** The text in pieces as a model streams it: word by word, each with its trailing space. */
const pieces = (text: string): ReadonlyArray<string> => text.split(/(?<= )/).filter((piece) => piece.length > 0)

/** A deterministic vector in [-1, 1) for `text`: the same text always embeds the same. */
const vectorOf = (text: string, dimensions: number): ReadonlyArray<number> =>
  Array.from(
    { length: dimensions },
    (_, d) => Array.from(text).reduce((h, c) => (h * 31 + c.codePointAt(0)!) % 2003, d + 1) / 1001.5 - 1
  )

const responseOf = (request: ChatRequest, reply: Reply): ChatResponse => {
  const toolCalls = (reply.toolCalls ?? []).map((call) =>
    new LlmToolCall({ name: call.name, arguments: call.arguments })
  )
  return new ChatResponse({
    model: request.model,
    message: new ChatMessage({ role: "assistant", content: reply.content, toolCalls }),
    usage: new TokenUsage({
      prompt: request.messages.reduce((n, message) => n + words(message.content), 0),
      completion: words(reply.content) + toolCalls.length
    }),
    doneReason: "stop",
    host: testHost
  })
}

/** Replies taken in turn; a request past the last one fails with `LlmBadResponse`. */
const inTurn = (replies: ReadonlyArray<Reply>) =>
  Effect.map(
    Ref.make(0),
    (turn) => (_: ChatRequest) =>
      Effect.flatMap(Ref.getAndUpdate(turn, (n) => n + 1), (n): Effect.Effect<Reply, LlmError> => {
        const reply = replies[n]
        return reply === undefined
          ? Effect.fail(
            new LlmBadResponse({
              host: testHost,
              message: `the script has ${replies.length} replies, no more`,
              raw: ""
            })
          )
          : Effect.succeed(reply)
      })
  )

/** A language model in memory answering from `script`: no I/O, streamed answers come word by word. */
export const makeTest = (script: Script, options: TestOptions = {}): Effect.Effect<Service> =>
  Effect.map(
    typeof script === "function"
      ? Effect.succeed((request: ChatRequest) =>
        Effect.suspend(() => {
          const reply = script(request)
          return Effect.isEffect(reply) ? reply : Effect.succeed(reply)
        })
      )
      : inTurn(script),
    (replyTo): Service => {
      const has = (model: string): Effect.Effect<void, ModelNotFound> =>
        options.models === undefined || options.models.includes(model)
          ? Effect.void
          : Effect.fail(new ModelNotFound({ host: testHost, model }))
      const chat = (request: ChatRequest) =>
        has(request.model).pipe(
          Effect.zipRight(replyTo(request)),
          Effect.map((reply) => responseOf(request, reply))
        )
      return {
        chat,
        chatStream: (request) =>
          Stream.unwrap(Effect.map(chat(request), (response) =>
            Stream.fromIterable<ChatChunk>([
              ...pieces(response.message.content).map((content) => ({ _tag: "Delta" as const, content })),
              { _tag: "Done", response }
            ]))),
        embed: (model, texts) => Effect.as(has(model), texts.map((text) => vectorOf(text, options.dimensions ?? 8))),
        models: Effect.succeed((options.models ?? []).map((name) => new ModelInfo({ name, host: testHost })))
      }
    }
  )

export class LanguageModel extends Context.Tag("loom/LanguageModel")<LanguageModel, Service>() {
  /**
   * A scripted model in memory, for tests (like @effect/ai's `withLanguageModel`): `script`
   * answers each request, or its replies are taken in turn. Each build has its own turn.
   */
  static readonly layerTest = (script: Script, options?: TestOptions): Layer.Layer<LanguageModel> =>
    Layer.effect(LanguageModel, makeTest(script, options))
}
