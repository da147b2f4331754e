/**
 * What the adapter tests over the simulator share: a language model over simulators with
 * test-friendly settings, a request, and the chat body the simulator last received.
 */
import { Duration, Effect, Schema } from "effect"
import { ChatMessage, ChatRequest, toolSpec } from "../../../src/domain/Chat.js"
import { RetryPolicy } from "../../../src/domain/RetryPolicy.js"
import * as Tool from "../../../src/domain/Tool.js"
import * as OllamaConfig from "../../../src/infrastructure/ollama/OllamaConfig.js"
import * as OllamaLanguageModel from "../../../src/infrastructure/ollama/OllamaLanguageModel.js"
import type * as OllamaSimulator from "../../../src/infrastructure/ollama/OllamaSimulator.js"

export const weather = Tool.make({
  name: "weather",
  description: "Current weather for a city",
  input: Schema.Struct({ city: Schema.String }),
  output: Schema.Struct({ celsius: Schema.Number }),
  handler: () => Effect.succeed({ celsius: 20 })
})

export const ask = (content: string, options: { readonly model?: string; readonly tools?: boolean } = {}) =>
  new ChatRequest({
    model: options.model ?? "llama3.2",
    messages: [new ChatMessage({ role: "user", content })],
    tools: options.tools === false ? [] : [toolSpec(weather)]
  })

/** Retries at once (1 ms apart), so any longer wait is the host's or the breaker's. */
export const quickRetry = RetryPolicy.make({
  maxRetries: 3,
  initialDelay: Duration.millis(1),
  multiplier: 1,
  maxDelay: Duration.millis(1),
  jitter: false
})

/** A language model over the given simulators, without retries. */
export const model = (urls: ReadonlyArray<string>, overrides: Partial<OllamaConfig.OllamaOptions> = {}) =>
  OllamaLanguageModel.make({
    ...OllamaConfig.defaults,
    hosts: urls,
    retry: RetryPolicy.none,
    chatTimeout: Duration.seconds(5),
    ...overrides
  })

/** The part of a chat body these tests look at, as the simulator received it. */
const SentChat = Schema.Struct({
  messages: Schema.Array(Schema.Struct({ role: Schema.String, content: Schema.String })),
  format: Schema.optional(Schema.Unknown),
  keep_alive: Schema.optional(Schema.Number)
})

export const lastChat = (sim: OllamaSimulator.OllamaSimulator) =>
  Schema.decodeUnknownSync(SentChat)(sim.lastBody("chat"))

export const lastEmbedKeepAlive = (sim: OllamaSimulator.OllamaSimulator) =>
  Schema.decodeUnknownSync(Schema.Struct({ keep_alive: Schema.Number }))(sim.lastBody("embed")).keep_alive
