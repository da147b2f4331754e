import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, TestClock } from "effect"
import { ChatMessage, ChatRequest } from "../../../src/domain/Chat.js"
import * as OllamaClient from "../../../src/infrastructure/ollama/OllamaClient.js"
import * as OllamaConfig from "../../../src/infrastructure/ollama/OllamaConfig.js"
import * as OllamaFetch from "../../../src/infrastructure/ollama/OllamaFetch.js"
import * as OllamaLanguageModel from "../../../src/infrastructure/ollama/OllamaLanguageModel.js"
import * as OllamaSimulator from "../../../src/infrastructure/ollama/OllamaSimulator.js"
import { eventually } from "../../support/Eventually.js"
import { settle, sleepingUntil } from "../resilience/TestClockSleeps.js"
import { quickRetry } from "./SimulatedModel.js"

const ask = (content: string) =>
  new ChatRequest({ model: "llama3.2", messages: [new ChatMessage({ role: "user", content })], tools: [] })

const model = (url: string) =>
  OllamaLanguageModel.make({
    ...OllamaConfig.defaults,
    hosts: [url],
    retry: quickRetry,
    chatTimeout: Duration.minutes(5)
  })

describe("OllamaClient.toLlmError with Retry-After", () => {
  it.effect("a 429 is a transient LlmUnavailable, carrying the host's Retry-After", () =>
    Effect.sync(() => {
      const toLlmError = OllamaClient.toLlmError("http://127.0.0.1:1", "llama3.2")
      const busy = toLlmError(new OllamaFetch.ErrorReply(429, "slow down", Duration.seconds(2)))
      assert.deepInclude(busy, { _tag: "LlmUnavailable", status: 429, retryAfter: Duration.seconds(2) })
      const down = toLlmError(new OllamaFetch.ErrorReply(503, "busy", Duration.seconds(1)))
      assert.deepInclude(down, { _tag: "LlmUnavailable", status: 503, retryAfter: Duration.seconds(1) })
    }))
})

describe("Retry-After over the simulator", () => {
  it.scoped("a 429 with Retry-After: 2 is retried after 2 seconds, and not before", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model(sim.url)
      sim.setFaults("chat", { errorRate: 1, status: 429, retryAfter: 2 })
      const fiber = yield* Effect.fork(llm.chat(ask("hello")))
      yield* eventually(() => sim.requests("chat") === 1, "the first attempt")
      sim.clearFaults()
      yield* sleepingUntil(2_000)
      yield* TestClock.adjust("1999 millis")
      yield* settle
      assert.strictEqual(sim.requests("chat"), 1, "no retry before the Retry-After")
      yield* TestClock.adjust("1 millis")
      const answer = yield* Fiber.join(fiber)
      assert.strictEqual(answer.message.content, "echo: hello")
      assert.strictEqual(sim.requests("chat"), 2)
    }))

  it.scoped("a 503's Retry-After as an HTTP date is honoured, capped at a minute", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model(sim.url)
      sim.setFaults("chat", { errorRate: 1, status: 503, retryAfter: "Wed, 21 Oct 2099 07:28:00 GMT" })
      const fiber = yield* Effect.fork(llm.chat(ask("again")))
      yield* eventually(() => sim.requests("chat") === 1, "the first attempt")
      sim.clearFaults()
      yield* sleepingUntil(60_000)
      yield* TestClock.adjust("59999 millis")
      yield* settle
      assert.strictEqual(sim.requests("chat"), 1, "no retry before the (capped) Retry-After")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* Fiber.join(fiber)).message.content, "echo: again")
      assert.strictEqual(sim.requests("chat"), 2)
    }))
})
