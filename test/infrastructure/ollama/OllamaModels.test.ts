import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, TestClock } from "effect"
import { ChatMessage, ChatRequest } from "../../../src/domain/Chat.js"
import * as OllamaConfig from "../../../src/infrastructure/ollama/OllamaConfig.js"
import { canonical } from "../../../src/infrastructure/ollama/OllamaModels.js"
import * as OllamaSimulator from "../../../src/infrastructure/ollama/OllamaSimulator.js"
import { model as simulated } from "./SimulatedModel.js"

const ask = (content: string, model: string) =>
  new ChatRequest({ model, messages: [new ChatMessage({ role: "user", content })], tools: [] })

/** The shared test model, with a deadline no TestClock step here reaches. */
const model = (urls: ReadonlyArray<string>, overrides: Partial<OllamaConfig.OllamaOptions> = {}) =>
  simulated(urls, { chatTimeout: Duration.minutes(5), ...overrides })

/** Three hosts: only the second has `phi3`. */
const threeHosts = Effect.all([
  OllamaSimulator.make(),
  OllamaSimulator.make({ models: ["phi3"] }),
  OllamaSimulator.make()
])

describe("OllamaModels.canonical", () => {
  it.effect("a name without a tag is :latest", () =>
    Effect.sync(() => {
      assert.strictEqual(canonical("llama3.2"), "llama3.2:latest")
      assert.strictEqual(canonical("llama3.2:3b"), "llama3.2:3b")
      assert.strictEqual(canonical("localhost:5000/org/model"), "localhost:5000/org/model:latest")
    }))
})

describe("model-aware routing over three simulators", () => {
  it.scoped("a model on one of three hosts: every request goes to that host", () =>
    Effect.gen(function*() {
      const [a, b, c] = yield* threeHosts
      const llm = yield* model([a.url, b.url, c.url])
      const sequential = yield* Effect.forEach([1, 2, 3, 4], (i) => llm.chat(ask(`q${i}`, "phi3")))
      const concurrent = yield* Effect.forEach([5, 6, 7, 8], (i) => llm.chat(ask(`q${i}`, "phi3")), {
        concurrency: "unbounded"
      })
      assert.isTrue([...sequential, ...concurrent].every((answer) => answer.host === b.url))
      assert.deepStrictEqual([a.requests("chat"), b.requests("chat"), c.requests("chat")], [0, 8, 0])
      // the others still share what they all have
      const spread = yield* Effect.forEach([1, 2, 3], (i) => llm.chat(ask(`r${i}`, "llama3.2")))
      assert.isTrue(spread.every((answer) => answer.host !== b.url))
    }))

  it.scoped("a model on no host fails fast with ModelNotFound naming the three hosts, no chat sent", () =>
    Effect.gen(function*() {
      const [a, b, c] = yield* threeHosts
      const llm = yield* model([a.url, b.url, c.url], { breakerFailures: 1 })
      const error = yield* Effect.flip(llm.chat(ask("hi", "mistral")))
      assert.strictEqual(error._tag, "ModelNotFound")
      assert.deepStrictEqual(error._tag === "ModelNotFound" && error.hosts, [a.url, b.url, c.url])
      assert.deepStrictEqual(error._tag === "ModelNotFound" && error.model, "mistral")
      assert.deepStrictEqual([a.requests("chat"), b.requests("chat"), c.requests("chat")], [0, 0, 0])
      // asked again before failing once more, in case it was pulled since
      yield* Effect.flip(llm.chat(ask("hi", "mistral")))
      assert.deepStrictEqual([a.requests("tags"), b.requests("tags"), c.requests("tags")], [2, 2, 2])
      assert.deepStrictEqual([a.requests("chat"), b.requests("chat"), c.requests("chat")], [0, 0, 0])
      assert.strictEqual((yield* llm.chat(ask("still up", "phi3"))).host, b.url)
    }))

  it.scoped("a host whose listing fails is unknown and still eligible; it is asked again soon", () =>
    Effect.gen(function*() {
      const [a, b, c] = yield* threeHosts
      a.setFaults("tags", { malformed: true })
      c.setFaults("tags", { errorRate: 1, status: 500 })
      const llm = yield* model([a.url, b.url, c.url])
      // a and c are unknown, so they stay in rotation for what b lacks
      const llamas = yield* Effect.forEach([1, 2, 3, 4], (i) => llm.chat(ask(`r${i}`, "llama3.2")))
      assert.deepStrictEqual([a.requests("chat"), b.requests("chat"), c.requests("chat")], [2, 0, 2])
      assert.isTrue(llamas.every((answer) => answer.host !== b.url))
      // phi3 may be on a or c too: one that answers it has not is passed over for b, not failed
      const phis = yield* Effect.forEach([1, 2, 3, 4], (i) => llm.chat(ask(`q${i}`, "phi3")))
      assert.isTrue(phis.every((answer) => answer.host === b.url))
      assert.strictEqual(b.requests("chat"), 4)
      // an unknown listing is asked again after a few seconds, a known one not before its TTL
      const polled = [a.requests("tags"), b.requests("tags"), c.requests("tags")]
      a.clearFaults()
      yield* TestClock.adjust("5001 millis")
      yield* llm.chat(ask("later", "llama3.2"))
      assert.isAbove(a.requests("tags"), polled[0]!)
      assert.strictEqual(b.requests("tags"), polled[1])
    }))

  it.scoped("listings are cached for OLLAMA_MODELS_TTL and asked again when it expires", () =>
    Effect.gen(function*() {
      const [a, b, c] = yield* threeHosts
      const llm = yield* model([a.url, b.url, c.url], { modelsTtl: Duration.seconds(30) })
      yield* Effect.forEach([1, 2, 3], (i) => llm.chat(ask(`q${i}`, "phi3")))
      assert.strictEqual(b.requests("tags"), 1)
      yield* TestClock.adjust("30001 millis")
      yield* llm.chat(ask("later", "phi3"))
      assert.deepStrictEqual([a.requests("tags"), b.requests("tags"), c.requests("tags")], [2, 2, 2])
    }))
})
