/** The port through which agents talk to a language model. Ollama is one adapter; tests use the simulator. */
import type { Effect, Stream } from "effect"
import { Context } from "effect"
import type { ChatChunk, ChatRequest, ChatResponse, ModelInfo } from "./Chat.js"
import type { CircuitOpen } from "./Errors.js"
import type { LlmBadResponse, LlmTimeout, LlmUnavailable, ModelNotFound } from "./LlmErrors.js"

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

export class LanguageModel extends Context.Tag("loom/LanguageModel")<LanguageModel, Service>() {}
