import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, Option, Stream, TestClock } from "effect"
import { ChatMessage, ChatRequest } from "../../../src/domain/Chat.js"
import * as OllamaConfig from "../../../src/infrastructure/ollama/OllamaConfig.js"
import type * as OllamaRateLimits from "../../../src/infrastructure/ollama/OllamaRateLimits.js"
import * as OllamaSimulator from "../../../src/infrastructure/ollama/OllamaSimulator.js"
import type * as RateLimit from "../../../src/infrastructure/resilience/RateLimit.js"
import { settle, sleepingUntil } from "../resilience/TestClockSleeps.js"
import { model as simulated } from "./SimulatedModel.js"

const ask = (content: string, model = "llama3.2") =>
  new ChatRequest({ model, messages: [new ChatMessage({ role: "user", content })], tools: [] })

const rate = (limit: number, interval: Duration.DurationInput): RateLimit.Rate => ({
  limit,
  interval: Duration.decode(interval)
})
const limits = (requests?: RateLimit.Rate, tokens?: RateLimit.Rate): OllamaRateLimits.Limits => ({
  requests: Option.fromNullable(requests),
  tokens: Option.fromNullable(tokens)
})

/** The shared test model, with a deadline no TestClock step here reaches. */
const model = (urls: ReadonlyArray<string>, overrides: Partial<OllamaConfig.OllamaOptions> = {}) =>
  simulated(urls, { chatTimeout: Duration.minutes(5), ...overrides })

const chats = (...sims: ReadonlyArray<OllamaSimulator.OllamaSimulator>) =>
  sims.reduce((n, sim) => n + sim.requests("chat"), 0)

describe("OllamaConfig rate limits", () => {
  const read = (env: Record<string, string>) =>
    Effect.withConfigProvider(OllamaConfig.config, ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.effect("none by default; per host and per model, requests and tokens, as written", () =>
    Effect.gen(function*() {
      const plain = yield* read({})
      assert.deepStrictEqual(plain.rateLimit, limits())
      assert.strictEqual(plain.modelRateLimits.size, 0)
      assert.isTrue(Duration.equals(plain.modelsTtl, Duration.minutes(1)))
      const options = yield* read({
        OLLAMA_RATE_LIMIT: "60/minute, 100000 tokens/minute",
        OLLAMA_MODEL_RATE_LIMIT: "llama3.2=30/minute,llama3.2=20000 tokens/minute, hf.co/org/model:Q4=5/10 seconds",
        OLLAMA_MODELS_TTL: "30 seconds"
      })
      assert.deepStrictEqual(options.rateLimit, limits(rate(60, "1 minute"), rate(100_000, "1 minute")))
      assert.deepStrictEqual(
        [...options.modelRateLimits],
        [
          ["llama3.2:latest", limits(rate(30, "1 minute"), rate(20_000, "1 minute"))],
          ["hf.co/org/model:Q4", limits(rate(5, "10 seconds"))]
        ]
      )
      assert.isTrue(Duration.equals(options.modelsTtl, Duration.seconds(30)))
    }))

  it.effect("a bad value names its variable", () =>
    Effect.gen(function*() {
      for (
        const [name, value] of [
          ["OLLAMA_RATE_LIMIT", "60"],
          ["OLLAMA_RATE_LIMIT", "0/minute"],
          ["OLLAMA_RATE_LIMIT", "60/fortnight"],
          ["OLLAMA_RATE_LIMIT", "1/minute,2/second"],
          ["OLLAMA_MODEL_RATE_LIMIT", "llama3.2"],
          ["OLLAMA_MODEL_RATE_LIMIT", "=5/second"],
          ["OLLAMA_MODEL_RATE_LIMIT", "llama3.2=5 bananas/second"],
          ["OLLAMA_MODELS_TTL", "0 seconds"]
        ] as const
      ) {
        const error = yield* Effect.flip(read({ [name]: value }))
        assert.include(String(error), name, value)
      }
    }))
})

describe("rate limits over the simulator", () => {
  it.scoped("a host's request limit holds back the (n+1)-th call to it; each host has its own", () =>
    Effect.gen(function*() {
      const a = yield* OllamaSimulator.make()
      const b = yield* OllamaSimulator.make()
      const llm = yield* model([a.url, b.url], { rateLimit: limits(rate(1, "1 second")) })
      yield* llm.chat(ask("one"))
      yield* llm.chat(ask("two"))
      assert.deepStrictEqual([a.requests("chat"), b.requests("chat")], [1, 1], "one each, at once")
      const third = yield* Effect.fork(llm.chat(ask("three")))
      yield* sleepingUntil(1_000)
      yield* TestClock.adjust("999 millis")
      yield* settle
      assert.strictEqual(chats(a, b), 2, "the third waits for a host's budget")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* Fiber.join(third)).message.content, "echo: three")
      assert.strictEqual(chats(a, b), 3)
    }))

  it.scoped("a model's limit holds back that model on every host, not the others", () =>
    Effect.gen(function*() {
      const a = yield* OllamaSimulator.make()
      const b = yield* OllamaSimulator.make()
      const llm = yield* model([a.url, b.url], {
        modelRateLimits: new Map([["llama3.2:latest", limits(rate(1, "1 second"))]])
      })
      yield* llm.chat(ask("first"))
      const second = yield* Effect.fork(llm.chat(ask("second")))
      yield* sleepingUntil(1_000)
      const other = yield* llm.chat(ask("meanwhile", "qwen2.5-coder"))
      assert.strictEqual(other.message.content, "echo: meanwhile")
      yield* settle
      assert.strictEqual(chats(a, b), 2, "llama3.2 waits although a host is free; qwen2.5-coder does not")
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(second)).message.content, "echo: second")
      assert.strictEqual(chats(a, b), 3)
    }))

  it.scoped("a token limit reserves the prompt's estimate and charges the reply's counts after", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      // 10 tokens a second: one every 100 ms
      const llm = yield* model([sim.url], { rateLimit: limits(undefined, rate(10, "1 second")) })
      sim.setScript(() => ({ content: Array.from({ length: 20 }, (_, i) => `w${i}`).join(" ") }))
      // "hi": 1 token estimated and reserved; the reply reports 1 + 20, so 20 more are charged
      // (capped at the budget, 10): the bucket is 1 token in debt
      yield* llm.chat(ask("hi"))
      const next = yield* Effect.fork(llm.chat(ask("hi")))
      // its own token makes 2 in debt: 200 ms
      yield* sleepingUntil(200)
      yield* TestClock.adjust("199 millis")
      yield* settle
      assert.strictEqual(sim.requests("chat"), 1)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(next)
      assert.strictEqual(sim.requests("chat"), 2)
    }))

  it.scoped("a streamed chat has its final counts charged too", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model([sim.url], { rateLimit: limits(undefined, rate(10, "1 second")) })
      sim.setScript(() => ({ content: Array.from({ length: 20 }, (_, i) => `w${i}`).join(" ") }))
      yield* Stream.runDrain(llm.chatStream(ask("hi")))
      const next = yield* Effect.fork(Stream.runDrain(llm.chatStream(ask("hi"))))
      yield* sleepingUntil(200)
      yield* TestClock.adjust("199 millis")
      yield* settle
      assert.strictEqual(sim.requests("chat"), 1)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(next)
      assert.strictEqual(sim.requests("chat"), 2)
    }))
})
