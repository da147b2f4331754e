/**
 * The port through which agents talk to a language model. Ollama is one adapter (over
 * HTTP, in infrastructure/ollama); `LanguageModel.layerTest` is a scripted model in
 * memory, for tests that are not about the transport. Structured output
 * (`generateObject`, `streamObject`) is built on the port's chat, as @effect/ai builds
 * `LanguageModel.generateObject` on a provider's text generation, so every adapter has it
 * and only has to honour `ChatRequest.format`.
 */
import { Context, Effect, Either, JSONSchema, Layer, Option, ParseResult, Ref, Schema, Stream } from "effect"
import type { ChatChunk, ObjectChunk, ObjectResponse } from "./Chat.js"
import { ChatMessage, ChatRequest, ChatResponse, LlmToolCall, ModelInfo, TokenUsage } from "./Chat.js"
import type { CircuitOpen } from "./Errors.js"
import type { LlmTimeout, LlmUnavailable } from "./LlmErrors.js"
import { LlmBadResponse, LlmBadStructuredOutput, ModelNotFound } from "./LlmErrors.js"

export type LlmError = LlmUnavailable | LlmTimeout | LlmBadResponse | ModelNotFound | CircuitOpen

/** What asking for a structured reply can fail with: the chat's errors, or a reply that never decoded. */
export type ObjectError = LlmError | LlmBadStructuredOutput

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
// Structured output is `generateObject` and `streamObject` below: built on `chat` and
// `chatStream`, so an adapter only honours `ChatRequest.format`, and hand-written models
// (the benches') need not implement it.

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

/** The request for a structured reply: the schema, as JSON Schema, is the reply's format. */
const objectRequest = <A, I>(schema: Schema.Schema<A, I>, request: ChatRequest): ChatRequest =>
  new ChatRequest({ ...request, format: { ...JSONSchema.make(schema) } })

/** A failed decode as the error tells it: every issue with its path, and the first path, dotted. */
const issuesOf = (error: ParseResult.ParseError) => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  return {
    field: issues[0]?.path.join(".") ?? "",
    message: issues.map((issue) => issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message)
      .join("; ")
  }
}

/** The reply's text as a value of `schema`: JSON first, then the schema. */
const decodeObject = <A, I>(
  schema: Schema.Schema<A, I>,
  response: ChatResponse
): Either.Either<A, LlmBadStructuredOutput> =>
  Schema.decodeEither(Schema.parseJson(schema))(response.message.content).pipe(
    Either.mapLeft((error) =>
      new LlmBadStructuredOutput({
        host: response.host,
        model: response.model,
        ...issuesOf(error),
        raw: response.message.content.slice(0, 4096)
      })
    )
  )

/** The conversation again, with the rejected reply and what was wrong with it, so the model can correct itself. */
const withFeedback = (request: ChatRequest, response: ChatResponse, error: LlmBadStructuredOutput): ChatRequest =>
  new ChatRequest({
    ...request,
    messages: [
      ...request.messages,
      new ChatMessage({ role: "assistant", content: response.message.content }),
      new ChatMessage({
        role: "user",
        content: `Your reply does not match the required JSON schema (${error.message}). ` +
          "Answer again with only the corrected JSON."
      })
    ]
  })

/** A reply that does not decode is sent back once, with what was wrong; the second failure is the caller's. */
const objectRetries = 1

/**
 * A structured reply (like @effect/ai's `LanguageModel.generateObject`): the schema goes to
 * the model as the reply's format, and the reply's JSON is decoded with it. A reply that
 * does not decode is retried once with the decode error fed back to the model; then it
 * fails with `LlmBadStructuredOutput` naming the offending field.
 */
export const generateObject = Effect.fn("LanguageModel.generateObject")(
  function*<A, I>(schema: Schema.Schema<A, I>, request: ChatRequest) {
    const llm = yield* LanguageModel
    const attempt = (
      request: ChatRequest,
      retries: number
    ): Effect.Effect<ObjectResponse<A>, ObjectError> =>
      Effect.flatMap(llm.chat(request), (response) =>
        Either.match(decodeObject(schema, response), {
          onRight: (value) => Effect.succeed({ value, response }),
          onLeft: (error) =>
            retries > 0 ? attempt(withFeedback(request, response, error), retries - 1) : Effect.fail(error)
        }))
    return yield* attempt(objectRequest(schema, request), objectRetries)
  }
)

/** One streamed attempt, then (once it has ended and let go of its host) the retry it asked for, if any. */
const streamAttempt = <A, I>(
  llm: Service,
  schema: Schema.Schema<A, I>,
  request: ChatRequest,
  retries: number
): Stream.Stream<ObjectChunk<A>, ObjectError> =>
  Stream.suspend(() => {
    let retry = Option.none<ChatRequest>()
    const toObject = (chunk: ChatChunk): Effect.Effect<ObjectChunk<A>, ObjectError> => {
      if (chunk._tag === "Delta") return Effect.succeed(chunk)
      return Either.match(decodeObject(schema, chunk.response), {
        onRight: (value) => Effect.succeed({ _tag: "Done", value, response: chunk.response }),
        onLeft: (error) => {
          if (retries === 0) return Effect.fail(error)
          retry = Option.some(withFeedback(request, chunk.response, error))
          return Effect.succeed({ _tag: "Retry", error })
        }
      })
    }
    return llm.chatStream(request).pipe(
      Stream.mapEffect(toObject),
      Stream.concat(Stream.suspend(() =>
        Option.match(retry, {
          onNone: () => Stream.empty,
          onSome: (next) => streamAttempt(llm, schema, next, retries - 1)
        })
      ))
    )
  })

/**
 * `generateObject` streamed: the reply's text as it arrives, decoded at `Done`. A reply
 * that does not decode gives a `Retry` chunk and is asked for again once, as with
 * `generateObject`.
 */
export const streamObject = <A, I>(
  schema: Schema.Schema<A, I>,
  request: ChatRequest
): Stream.Stream<ObjectChunk<A>, ObjectError, LanguageModel> =>
  Stream.unwrap(
    Effect.map(LanguageModel, (llm) => streamAttempt(llm, schema, objectRequest(schema, request), objectRetries))
  )
    .pipe(Stream.withSpan("LanguageModel.streamObject", { captureStackTrace: false }))
