/**
 * The LanguageModel port over Ollama, split as @effect/ai splits OpenAiLanguageModel from
 * OpenAiClient: this module turns Loom's requests into Ollama's and Ollama's replies into
 * Loom's; OllamaClient is the transport (with the deadline), and OllamaHosts places every
 * request (host choice, slot, breaker, retry on a fresh pick, metrics), so chat and
 * chatStream share all of it. A stream is retried only while it is being opened; closing it early, or
 * interrupting its reader, aborts its request and frees its host. Replies become responses
 * in OllamaChatReply (tool calls sent mid-stream or written as text included). Every chat
 * and embed carries its model's keep-alive (OllamaKeepAlive); a request's `format` goes as
 * Ollama's. Embeddings are batched and cached (OllamaEmbeddings).
 */
import type { Scope } from "effect"
import { Effect, Either, Layer, Stream } from "effect"
import type { Message as WireMessage, Tool as WireTool } from "ollama"
import type { ChatChunk, ChatRequest } from "../../domain/Chat.js"
import { ModelInfo } from "../../domain/Chat.js"
import type { LlmError } from "../../domain/LanguageModel.js"
import { LanguageModel } from "../../domain/LanguageModel.js"
import { LlmBadResponse } from "../../domain/LlmErrors.js"
import * as OllamaChatReply from "./OllamaChatReply.js"
import type * as OllamaClient from "./OllamaClient.js"
import type { OllamaOptions } from "./OllamaConfig.js"
import * as OllamaConfig from "./OllamaConfig.js"
import * as OllamaEmbeddings from "./OllamaEmbeddings.js"
import * as OllamaHost from "./OllamaHost.js"
import * as OllamaHosts from "./OllamaHosts.js"
import * as OllamaKeepAlive from "./OllamaKeepAlive.js"
import * as OllamaWire from "./OllamaWire.js"

export { defaults } from "./OllamaConfig.js"
export { completionTokens, duration, embedCache, inFlight, promptTokens, requests } from "./OllamaMetrics.js"

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

const chatOptions = (request: ChatRequest, device: Record<string, number>) => ({
  ...device,
  ...(request.options?.temperature === undefined ? {} : { temperature: request.options.temperature }),
  ...(request.options?.topP === undefined ? {} : { top_p: request.options.topP }),
  ...(request.options?.seed === undefined ? {} : { seed: request.options.seed }),
  ...(request.options?.numCtx === undefined ? {} : { num_ctx: request.options.numCtx }),
  ...(request.options?.numPredict === undefined ? {} : { num_predict: request.options.numPredict }),
  ...(request.options?.stop === undefined ? {} : { stop: [...request.options.stop] })
})

/** The one body of a chat, streamed or not (the client sets `stream`). */
const chatBody = (
  request: ChatRequest,
  device: Record<string, number>,
  keepAlive: OllamaKeepAlive.KeepAlive
): OllamaClient.ChatBody => ({
  model: request.model,
  messages: wireMessages(request),
  tools: wireTools(request),
  options: chatOptions(request, device),
  ...(request.format === undefined ? {} : { format: request.format }),
  keep_alive: OllamaKeepAlive.wire(keepAlive, request.model, request.keepAlive)
})

/** Who answers a request on `client`, and which tools a written tool call may name. */
const origin = (client: OllamaClient.OllamaClient, request: ChatRequest): OllamaChatReply.Origin => ({
  host: client.url,
  offered: request.tools.map((tool) => tool.name)
})

/** The vectors of one batch, one per text. */
const toVectors = (host: string, texts: ReadonlyArray<string>, reply: OllamaWire.EmbedReply) =>
  reply.embeddings.length === texts.length
    ? Effect.succeed(reply.embeddings)
    : Effect.fail(
      new LlmBadResponse({
        host,
        message: `expected ${texts.length} embeddings, got ${reply.embeddings.length}`,
        raw: ""
      })
    )

const toModels = (host: string, reply: OllamaWire.TagsReply) =>
  reply.models.map((m) => new ModelInfo({ name: m.name, host, ...(m.size === undefined ? {} : { sizeBytes: m.size }) }))

/** Every reachable host's models, asked of each host once; fails only when no host answers. */
const listModels = (hosts: OllamaHosts.OllamaHosts, options: OllamaOptions) =>
  Effect.forEach(
    hosts.all,
    (host) =>
      Effect.scoped(OllamaHost.attempt(host, {
        operation: "tags",
        model: "*",
        open: (client) => Effect.map(client.list(options.embedTimeout), (reply) => toModels(client.url, reply))
      })).pipe(Effect.either),
    { concurrency: "unbounded" }
  ).pipe(
    Effect.flatMap((answers) => {
      const lists = answers.flatMap((answer) => Either.isRight(answer) ? [answer.right] : [])
      const failure = answers.find(Either.isLeft)
      return lists.length === 0 && failure ? Effect.fail(failure.left) : Effect.succeed(lists.flat())
    }),
    Effect.withSpan("LanguageModel.models", { captureStackTrace: false })
  )

/** The span options of a request for `model`. */
const traced = (model: string) => ({ attributes: { "loom.model": model }, captureStackTrace: false })

export const make = (options: OllamaOptions): Effect.Effect<LanguageModel["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const hosts = yield* OllamaHosts.make(options)
    const device = OllamaConfig.deviceOptions(options)

    /** Chat and chatStream alike: one body, placed by `hosts`; `read` sends it and takes the reply. */
    const sendChat = <A>(
      request: ChatRequest,
      read: (client: OllamaClient.OllamaClient, body: OllamaClient.ChatBody) => Effect.Effect<A, LlmError, Scope.Scope>
    ) => {
      const body = chatBody(request, device, options.keepAlive)
      return hosts.run({ operation: "chat", model: request.model, open: (client) => read(client, body) })
    }

    const chat = (request: ChatRequest) =>
      Effect.scoped(sendChat(request, (client, body) =>
        Effect.flatMap(
          client.chat(body, options.chatTimeout),
          (reply) => OllamaChatReply.whole(origin(client, request), reply)
        ))).pipe(
          Effect.withSpan("LanguageModel.chat", traced(request.model))
        )

    /** The stream holds its host slot and its request for as long as it is read. */
    const chatStream = (request: ChatRequest): Stream.Stream<ChatChunk, LlmError> =>
      Stream.unwrapScoped(
        sendChat(request, (client, body) =>
          Effect.map(client.chatStream(body, options.chatTimeout), (parts) =>
            OllamaChatReply.streamed(origin(client, request), parts)))
      ).pipe(
        Stream.withSpan("LanguageModel.chatStream", traced(request.model))
      )

    const embed = yield* OllamaEmbeddings.make(options, (model, texts) =>
      Effect.scoped(hosts.run({
        operation: "embed",
        model,
        open: (client) =>
          Effect.flatMap(
            client.embed(
              { model, input: [...texts], options: device, keep_alive: OllamaKeepAlive.wire(options.keepAlive, model) },
              options.embedTimeout
            ),
            (reply) => toVectors(client.url, texts, reply)
          )
      })).pipe(
        Effect.withSpan("LanguageModel.embed", traced(model))
      ))

    return LanguageModel.of({ chat, chatStream, embed, models: listModels(hosts, options) })
  })

export const layer = (options: Partial<OllamaOptions> = {}) =>
  Layer.scoped(LanguageModel, make({ ...OllamaConfig.defaults, ...options }))

export const layerConfig = Layer.scoped(LanguageModel, Effect.flatMap(OllamaConfig.config, make))
