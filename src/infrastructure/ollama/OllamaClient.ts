/**
 * The transport to one Ollama host, as @effect/ai's OpenAiClient is the transport to
 * OpenAI: ollama-js over the host's keep-alive undici Agent, a fresh (cheap) client per
 * request carrying that request's abort signal, a deadline on every request, and replies
 * decoded to their wire shape. Every ollama-js or undici failure becomes an `LlmError` in
 * `toLlmError`, and nowhere else.
 */
import type { Scope } from "effect"
import { Duration, Effect, Stream } from "effect"
import type { ChatRequest as WireChatRequest, EmbedRequest } from "ollama"
import { Ollama } from "ollama"
import { Agent } from "undici"
import { LlmBadResponse, LlmTimeout, LlmUnavailable, ModelNotFound } from "../../domain/LlmErrors.js"
import * as OllamaFetch from "./OllamaFetch.js"
import * as OllamaWire from "./OllamaWire.js"

export type Operation = "chat" | "embed" | "tags"

/** What a request can fail with on the wire. */
export type TransportError = LlmUnavailable | LlmTimeout | LlmBadResponse | ModelNotFound

/** A chat request as sent, but for `stream`, which the client sets. */
export type ChatBody = Omit<WireChatRequest, "stream">

export interface OllamaClient {
  readonly url: string
  /** One chat, read whole. */
  readonly chat: (body: ChatBody, timeout: Duration.Duration) => Effect.Effect<OllamaWire.ChatReply, TransportError>
  /**
   * Opens a streamed chat. The request, and its socket, live until the scope closes, which
   * aborts it; `timeout` bounds the opening and every wait for the next chunk.
   */
  readonly chatStream: (
    body: ChatBody,
    timeout: Duration.Duration
  ) => Effect.Effect<Stream.Stream<OllamaWire.ChatReply, TransportError>, TransportError, Scope.Scope>
  /** One vector per input. */
  readonly embed: (
    body: EmbedRequest,
    timeout: Duration.Duration
  ) => Effect.Effect<OllamaWire.EmbedReply, TransportError>
  /** The models the host has. */
  readonly list: (timeout: Duration.Duration) => Effect.Effect<OllamaWire.TagsReply, TransportError>
}

export interface Options {
  readonly url: string
  /** Keep-alive sockets to the host. */
  readonly maxConnections: number
}

/** ollama-js and undici failures, as the domain's errors. */
export const toLlmError = (host: string, model: string) => (error: unknown): TransportError => {
  if (error instanceof OllamaFetch.MalformedBody) {
    return new LlmBadResponse({ host, message: `malformed ${error.kind} in the reply`, raw: error.raw })
  }
  if (error instanceof OllamaFetch.ErrorReply) {
    if (error.status === 404 && /not found/i.test(error.message)) return new ModelNotFound({ host, model })
    // 429 is the host asking for time, as a 503 does: transient, not a bad request
    if (error.status < 500 && error.status !== 429) {
      return new LlmBadResponse({ host, message: error.message, raw: error.message })
    }
    return new LlmUnavailable({
      host,
      message: error.message,
      status: error.status,
      ...(error.retryAfter === undefined ? {} : { retryAfter: error.retryAfter })
    })
  }
  const message = error instanceof Error ? error.message : String(error)
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : ""
  return new LlmUnavailable({ host, message: `${message}${cause}` })
}

const timedOut = (host: string, operation: Operation, after: Duration.Duration) => () =>
  new LlmTimeout({ host, operation: `llm.${operation}`, after })

/** The host's connection pool. Effect owns every deadline: undici's own (300 s) would cut long generations. */
const agent = (options: Options) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new Agent({ connections: options.maxConnections, keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 })
    ),
    (agent) => Effect.promise(() => agent.destroy())
  )

/** Makes a client for one request: cheap, sharing the host's sockets, aborted by `signal`. */
type Connect = (signal: AbortSignal) => Ollama

/** One request under its deadline; interrupting it (the deadline included) aborts it. */
const send = <A>(
  url: string,
  operation: Operation,
  model: string,
  timeout: Duration.Duration,
  run: (signal: AbortSignal) => Promise<A>
): Effect.Effect<A, TransportError> =>
  Effect.tryPromise({ try: run, catch: toLlmError(url, model) }).pipe(
    Effect.timeoutFail({ duration: timeout, onTimeout: timedOut(url, operation, timeout) })
  )

/** The stream outlives the promise that opened it, so its abort controller belongs to the scope. */
/**
 * `parts`, whose `return()` (what a stream that stops early or times out calls) aborts the
 * request first: ollama-js's iterator queues `return()` behind a pending read, which only
 * the abort ends, so returning without it would wait for a silent host forever.
 */
const abortingOnReturn = <A>(parts: AsyncIterable<A>, controller: AbortController): AsyncIterable<A> => ({
  [Symbol.asyncIterator]: () => {
    const iterator = parts[Symbol.asyncIterator]()
    return {
      next: () => iterator.next(),
      return: (value?: unknown) => {
        controller.abort()
        return iterator.return ? iterator.return(value) : Promise.resolve({ done: true as const, value: undefined })
      }
    }
  }
})

const openChatStream = (url: string, connect: Connect, body: ChatBody, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    const controller = yield* Effect.acquireRelease(
      Effect.sync(() => new AbortController()),
      (controller) => Effect.sync(() => controller.abort())
    )
    const parts = yield* send(
      url,
      "chat",
      body.model,
      timeout,
      () => connect(controller.signal).chat({ ...body, stream: true })
    )
    return Stream.fromAsyncIterable(abortingOnReturn(parts, controller), toLlmError(url, body.model)).pipe(
      Stream.timeoutFail(timedOut(url, "chat", timeout), timeout),
      Stream.mapEffect(OllamaWire.decode(OllamaWire.ChatReply, url, "chat stream chunk"))
    )
  })

export const make = (options: Options): Effect.Effect<OllamaClient, never, Scope.Scope> =>
  Effect.zipWith(agent(options), Effect.clock, (pool, clock) => {
    const url = options.url
    const now = () => clock.unsafeCurrentTimeMillis()
    const connect: Connect = (signal) => new Ollama({ host: url, fetch: OllamaFetch.make(pool, signal, now) })
    return {
      url,
      chat: (body, timeout) =>
        send(url, "chat", body.model, timeout, (signal) => connect(signal).chat({ ...body, stream: false })).pipe(
          Effect.flatMap(OllamaWire.decode(OllamaWire.ChatReply, url, "chat reply"))
        ),
      chatStream: (body, timeout) => openChatStream(url, connect, body, timeout),
      embed: (body, timeout) =>
        send(url, "embed", body.model, timeout, (signal) => connect(signal).embed(body)).pipe(
          Effect.flatMap(OllamaWire.decode(OllamaWire.EmbedReply, url, "embed reply"))
        ),
      list: (timeout) =>
        send(url, "tags", "*", timeout, (signal) => connect(signal).list()).pipe(
          Effect.flatMap(OllamaWire.decode(OllamaWire.TagsReply, url, "model list"))
        )
    }
  })
