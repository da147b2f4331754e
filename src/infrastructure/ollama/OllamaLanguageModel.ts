/**
 * The LanguageModel port over Ollama. Calls are spread over several hosts
 * (least outstanding first, skipping hosts whose breaker is open); each call holds one of
 * the host's parallel slots, runs under the host's breaker and a deadline, is retried on
 * another pick for transient errors, and aborts its HTTP request when interrupted.
 * Embeddings from concurrent callers are batched into one /api/embed request per model
 * and cached by (model, text digest).
 */
import type { Scope } from "effect"
import {
  Cache,
  Cause,
  Data,
  Duration,
  Effect,
  Either,
  Equal,
  Hash,
  Layer,
  Metric,
  MetricBoundaries,
  Option,
  Stream
} from "effect"
import { createHash } from "node:crypto"
import type { Message as WireMessage, Ollama, Tool as WireTool } from "ollama"
import type { ChatChunk, ChatRequest } from "../../domain/Chat.js"
import { ChatResponse, ModelInfo, TokenUsage } from "../../domain/Chat.js"
import { CircuitOpen } from "../../domain/Errors.js"
import type { LlmError } from "../../domain/LanguageModel.js"
import { LanguageModel } from "../../domain/LanguageModel.js"
import { LlmBadResponse, LlmTimeout, LlmUnavailable, ModelNotFound } from "../../domain/LlmErrors.js"
import * as Batcher from "../resilience/Batcher.js"
import * as MetricTags from "../resilience/MetricTags.js"
import * as Retry from "../resilience/Retry.js"
import type { OllamaOptions } from "./OllamaConfig.js"
import * as OllamaConfig from "./OllamaConfig.js"

export { defaults } from "./OllamaConfig.js"
import { MalformedBody } from "./OllamaFetch.js"
import * as OllamaHost from "./OllamaHost.js"
import * as OllamaWire from "./OllamaWire.js"

export const requests = Metric.counter("loom_llm_requests", {
  description: "LLM requests by model, host, operation and outcome",
  incremental: true
})
export const duration = Metric.histogram(
  "loom_llm_duration_ms",
  MetricBoundaries.exponential({ start: 5, factor: 2, count: 14 }),
  "LLM request duration in milliseconds"
)
export const promptTokens = Metric.counter("loom_llm_prompt_tokens", { incremental: true })
export const completionTokens = Metric.counter("loom_llm_completion_tokens", { incremental: true })
export const inFlight = Metric.gauge("loom_llm_in_flight", { description: "LLM requests in flight per host" })
export const embedCache = Metric.counter("loom_llm_embed_cache", {
  description: "Embedding cache lookups by result (hit or miss)",
  incremental: true
})

/** The cache key of one embedding: equal when model and text digest are. */
class EmbedKey extends Data.Class<{ readonly model: string; readonly text: string; readonly digest: string }> {
  [Hash.symbol]() {
    return Hash.string(`${this.model}\u0000${this.digest}`)
  }
  [Equal.symbol](that: unknown) {
    return that instanceof EmbedKey && that.model === this.model && that.digest === this.digest
  }
}

const embedKey = (model: string, text: string) =>
  new EmbedKey({ model, text, digest: createHash("sha256").update(text).digest("base64url") })

/** ollama-js and undici failures, as the domain's errors. */
const toLlmError = (host: string, model: string) => (error: unknown): LlmError => {
  if (error instanceof MalformedBody) {
    return new LlmBadResponse({ host, message: `malformed ${error.kind} in the reply`, raw: error.raw })
  }
  const status = typeof error === "object" && error !== null && "status_code" in error
    ? Number(error.status_code)
    : undefined
  const message = error instanceof Error ? error.message : String(error)
  if (status === 404 && /not found/i.test(message)) return new ModelNotFound({ host, model })
  if (status !== undefined && status < 500) return new LlmBadResponse({ host, message, raw: message })
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : ""
  return new LlmUnavailable({ host, message: `${message}${cause}`, ...(status === undefined ? {} : { status }) })
}

const isTransient = (error: LlmError): boolean => error._tag === "LlmUnavailable" || error._tag === "LlmTimeout"
const countsAgainstHost = (error: unknown): boolean => {
  const tag = (error as { readonly _tag?: string })._tag
  return tag === "LlmUnavailable" || tag === "LlmTimeout" || tag === "LlmBadResponse"
}

/** One request to a host: what to send with a client, how long to wait, how to read the reply. */
interface Call<A> {
  readonly operation: "chat" | "embed" | "tags"
  readonly model: string
  readonly timeout: Duration.Duration
  readonly send: (client: Ollama) => Promise<unknown>
  readonly decode: (host: string, reply: unknown) => Effect.Effect<A, LlmError>
}

const wireMessages = (request: ChatRequest): Array<WireMessage> =>
  request.messages.map((m) => ({
    role: m.role,
    content: m.content,
    ...(m.toolCalls.length > 0
      ? { tool_calls: m.toolCalls.map((call) => ({ function: { name: call.name, arguments: call.arguments } })) }
      : {}),
    ...(m.toolName === undefined ? {} : { tool_name: m.toolName })
  }))

const wireTools = (request: ChatRequest): Array<WireTool> =>
  request.tools.map((tool) => ({
    type: "function" as const,
    function: {
      name: tool.name,
      description: tool.description,
      parameters: tool.parameters as NonNullable<WireTool["function"]["parameters"]>
    }
  }))

export const make = (options: OllamaOptions): Effect.Effect<LanguageModel["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const hosts = yield* Effect.forEach(options.hosts, (url) =>
      OllamaHost.make({
        url,
        numParallel: options.numParallel,
        maxConnections: options.maxConnections,
        breaker: {
          consecutiveFailures: options.breakerFailures,
          resetTimeout: options.breakerResetTimeout,
          isFailure: countsAgainstHost
        }
      }))
    const clock = yield* Effect.clock
    const device = OllamaConfig.deviceOptions(options)
    const retry = Retry.schedule<LlmError>(options.retry, isTransient)
    let turn = 0

    /** The usable host with the fewest calls outstanding; ties go round-robin. */
    const pick: Effect.Effect<OllamaHost.OllamaHost, CircuitOpen> = Effect.flatMap(
      Effect.forEach(hosts, (host) => host.breaker.snapshot),
      (states) =>
        Effect.suspend(() => {
          const now = clock.unsafeCurrentTimeMillis()
          let best: OllamaHost.OllamaHost | undefined
          let retryAfter = Infinity
          turn = (turn + 1) % hosts.length
          for (let i = 0; i < hosts.length; i++) {
            const index = (turn + i) % hosts.length
            const host = hosts[index]!
            const state = states[index]!
            if (state._tag === "Open" && now < state.until) {
              retryAfter = Math.min(retryAfter, state.until - now)
              continue
            }
            if (best === undefined || host.outstanding < best.outstanding) best = host
          }
          return best
            ? Effect.succeed(best)
            : Effect.fail(new CircuitOpen({ service: "ollama", retryAfter: Duration.millis(retryAfter) }))
        })
    )

    /** One attempt on one host: slot, breaker, deadline, abortable request, decoded reply. */
    const attemptOn = <A>(
      host: OllamaHost.OllamaHost,
      { decode, model, operation, send, timeout }: Call<A>
    ): Effect.Effect<A, LlmError> =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          host.outstanding++
          return clock.unsafeCurrentTimeMillis()
        }).pipe(Effect.tap(() => Metric.set(MetricTags.tagged(inFlight, { host: host.url }), host.outstanding))),
        () =>
          host.semaphore.withPermits(1)(
            host.breaker.protect(
              Effect.tryPromise({ try: (signal) => send(host.client(signal)), catch: toLlmError(host.url, model) })
                .pipe(
                  Effect.timeoutFail({
                    duration: timeout,
                    onTimeout: () => new LlmTimeout({ host: host.url, operation: `llm.${operation}`, after: timeout })
                  }),
                  Effect.flatMap((reply) => decode(host.url, reply))
                )
            )
          ),
        (started, exit) => {
          host.outstanding--
          const outcome = exit._tag === "Success"
            ? "success"
            : Option.match(Cause.failureOption(exit.cause), { onNone: () => "interrupted", onSome: (e) => e._tag })
          const tags = { model, host: host.url, operation }
          return Effect.zipRight(
            Effect.zipRight(
              Metric.set(MetricTags.tagged(inFlight, { host: host.url }), host.outstanding),
              Metric.increment(MetricTags.tagged(requests, { ...tags, outcome }))
            ),
            Metric.update(MetricTags.tagged(duration, tags), clock.unsafeCurrentTimeMillis() - started)
          )
        }
      )

    /** A call on the best host, retried (on a fresh pick) for transient errors. */
    const call = <A>(request: Call<A>): Effect.Effect<A, LlmError> =>
      Effect.flatMap(pick, (host) => attemptOn(host, request)).pipe(
        Effect.retry(retry),
        Effect.withSpan(`LanguageModel.${request.operation}`, {
          attributes: { "loom.model": request.model },
          captureStackTrace: false
        })
      )

    const recordTokens = (response: ChatResponse) =>
      Effect.zipRight(
        Metric.incrementBy(MetricTags.tagged(promptTokens, { model: response.model }), response.usage.prompt),
        Metric.incrementBy(MetricTags.tagged(completionTokens, { model: response.model }), response.usage.completion)
      )

    const toResponse = (host: string, reply: OllamaWire.ChatReply, content: string) =>
      Effect.map(OllamaWire.message(host, reply.message, content), (message) =>
        // decoded already: skip re-validating on construction
        new ChatResponse({
          model: reply.model,
          message,
          usage: new TokenUsage({ prompt: reply.prompt_eval_count, completion: reply.eval_count }, true),
          ...(reply.done_reason === undefined ? {} : { doneReason: reply.done_reason }),
          host
        }, true))

    const chatOptions = (request: ChatRequest) => ({
      ...device,
      ...(request.options?.temperature === undefined ? {} : { temperature: request.options.temperature }),
      ...(request.options?.topP === undefined ? {} : { top_p: request.options.topP }),
      ...(request.options?.seed === undefined ? {} : { seed: request.options.seed }),
      ...(request.options?.numCtx === undefined ? {} : { num_ctx: request.options.numCtx }),
      ...(request.options?.numPredict === undefined ? {} : { num_predict: request.options.numPredict }),
      ...(request.options?.stop === undefined ? {} : { stop: [...request.options.stop] })
    })

    const chat = (request: ChatRequest) =>
      call({
        operation: "chat",
        model: request.model,
        timeout: options.chatTimeout,
        send: (client) =>
          client.chat({
            model: request.model,
            messages: wireMessages(request),
            tools: wireTools(request),
            options: chatOptions(request),
            stream: false
          }),
        decode: (host, reply) =>
          Effect.flatMap(
            OllamaWire.decode(OllamaWire.ChatReply, host, "chat reply")(reply),
            (decoded) => toResponse(host, decoded, decoded.message.content)
          )
      }).pipe(Effect.tap(recordTokens))

    /**
     * A streamed chat holds its host slot and its request for as long as it is read; closing
     * the stream early (or interrupting its reader) aborts the request and frees the socket.
     */
    const chatStream = (request: ChatRequest): Stream.Stream<ChatChunk, LlmError> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const host = yield* pick
        yield* Effect.acquireRelease(
          Effect.sync(() => host.outstanding++),
          () => Effect.sync(() => host.outstanding--)
        )
        yield* Effect.acquireRelease(host.semaphore.take(1), () => host.semaphore.release(1))
        const controller = yield* Effect.acquireRelease(
          Effect.sync(() => new AbortController()),
          (controller) => Effect.sync(() => controller.abort())
        )
        const parts = yield* host.breaker.protect(
          Effect.tryPromise({
            try: () =>
              host.client(controller.signal).chat({
                model: request.model,
                messages: wireMessages(request),
                tools: wireTools(request),
                options: chatOptions(request),
                stream: true
              }),
            catch: toLlmError(host.url, request.model)
          }).pipe(
            Effect.timeoutFail({
              duration: options.chatTimeout,
              onTimeout: () => new LlmTimeout({ host: host.url, operation: "llm.chat", after: options.chatTimeout })
            })
          )
        )
        let content = ""
        let finished = false
        const toChunks = (reply: OllamaWire.ChatReply): Effect.Effect<ReadonlyArray<ChatChunk>, LlmError> => {
          content += reply.message.content
          if (!reply.done) {
            return Effect.succeed(
              reply.message.content.length > 0 ? [{ _tag: "Delta", content: reply.message.content }] : []
            )
          }
          finished = true
          return toResponse(host.url, reply, content).pipe(
            Effect.tap(recordTokens),
            Effect.map((response): ReadonlyArray<ChatChunk> => [
              ...(reply.message.content.length > 0 ? [{ _tag: "Delta" as const, content: reply.message.content }] : []),
              { _tag: "Done", response }
            ])
          )
        }
        return Stream.fromAsyncIterable(parts, toLlmError(host.url, request.model)).pipe(
          Stream.timeoutFail(
            () => new LlmTimeout({ host: host.url, operation: "llm.chat", after: options.chatTimeout }),
            options.chatTimeout
          ),
          Stream.mapEffect(OllamaWire.decode(OllamaWire.ChatReply, host.url, "chat stream chunk")),
          Stream.mapConcatEffect(toChunks),
          Stream.concat(Stream.suspend(() =>
            finished
              ? Stream.empty
              : Stream.fail(
                new LlmBadResponse({ host: host.url, message: "the stream ended before its final chunk", raw: content })
              )
          ))
        )
      })).pipe(
        Stream.withSpan("LanguageModel.chatStream", {
          attributes: { "loom.model": request.model },
          captureStackTrace: false
        })
      )

    const embedBatch = (model: string, texts: ReadonlyArray<string>) =>
      call({
        operation: "embed",
        model,
        timeout: options.embedTimeout,
        send: (client) => client.embed({ model, input: [...texts], options: device }),
        decode: (host, reply) =>
          Effect.flatMap(OllamaWire.decode(OllamaWire.EmbedReply, host, "embed reply")(reply), (decoded) =>
            decoded.embeddings.length === texts.length
              ? Effect.succeed(decoded.embeddings)
              : Effect.fail(
                new LlmBadResponse({
                  host,
                  message: `expected ${texts.length} embeddings, got ${decoded.embeddings.length}`,
                  raw: ""
                })
              ))
      })

    /** One batch may mix models: one request per model, results put back in item order. */
    const batcher = yield* Batcher.make({
      name: "ollama.embed",
      maxSize: options.embedBatchSize,
      maxWait: options.embedBatchWait,
      run: (items: ReadonlyArray<EmbedKey>) =>
        Effect.gen(function*() {
          const byModel = new Map<string, Array<number>>()
          items.forEach((item, i) => byModel.set(item.model, [...(byModel.get(item.model) ?? []), i]))
          const results = new Array<ReadonlyArray<number>>(items.length)
          yield* Effect.forEach(byModel, ([model, indices]) =>
            Effect.map(
              embedBatch(
                model,
                indices.map((i) => items[i]!.text)
              ),
              (vectors) =>
                indices.forEach((index, j) => {
                  results[index] = vectors[j]!
                })
            ), { concurrency: "unbounded", discard: true })
          return results
        })
    })

    const cache = yield* Cache.make({
      capacity: options.embedCacheCapacity,
      timeToLive: options.embedCacheTtl,
      lookup: (key: EmbedKey) => batcher.submit(key)
    })

    const embed = (model: string, texts: ReadonlyArray<string>) =>
      Effect.forEach(
        texts,
        (text) =>
          Effect.flatMap(cache.getEither(embedKey(model, text)), (result) =>
            Effect.as(
              Metric.increment(MetricTags.tagged(embedCache, { result: Either.isLeft(result) ? "hit" : "miss" })),
              Either.merge(result)
            )), // one text needs no fiber of its own
        { concurrency: texts.length > 1 ? "unbounded" : 1 }
      ).pipe(
        Effect.withSpan("LanguageModel.embed", {
          attributes: { "loom.model": model, "loom.texts": texts.length },
          captureStackTrace: false
        })
      )

    /** Every reachable host's models; fails only when no host answers. */
    const models = Effect.forEach(
      hosts,
      (host) =>
        attemptOn(host, {
          operation: "tags",
          model: "*",
          timeout: options.embedTimeout,
          send: (client) => client.list(),
          decode: (url, reply) =>
            Effect.map(
              OllamaWire.decode(OllamaWire.TagsReply, url, "model list")(reply),
              (decoded) =>
                decoded.models.map((m) =>
                  new ModelInfo({ name: m.name, host: url, ...(m.size === undefined ? {} : { sizeBytes: m.size }) })
                )
            )
        }).pipe(Effect.either),
      { concurrency: "unbounded" }
    ).pipe(
      Effect.flatMap((answers) => {
        const lists = answers.flatMap((answer) => Either.isRight(answer) ? [answer.right] : [])
        const failure = answers.find(Either.isLeft)
        return lists.length === 0 && failure ? Effect.fail(failure.left) : Effect.succeed(lists.flat())
      }),
      Effect.withSpan("LanguageModel.models", { captureStackTrace: false })
    )

    return LanguageModel.of({ chat, chatStream, embed, models })
  })

export const layer = (options: Partial<OllamaOptions> = {}) =>
  Layer.scoped(LanguageModel, make({ ...OllamaConfig.defaults, ...options }))

export const layerConfig = Layer.scoped(LanguageModel, Effect.flatMap(OllamaConfig.config, make))
