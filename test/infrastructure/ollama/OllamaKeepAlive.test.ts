import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either, Option, Stream } from "effect"
import { ChatRequest } from "../../../src/domain/Chat.js"
import * as OllamaConfig from "../../../src/infrastructure/ollama/OllamaConfig.js"
import * as OllamaKeepAlive from "../../../src/infrastructure/ollama/OllamaKeepAlive.js"
import * as OllamaSimulator from "../../../src/infrastructure/ollama/OllamaSimulator.js"
import { ask, lastChat, lastEmbedKeepAlive, model } from "./SimulatedModel.js"

const read = (value: string) =>
  Effect.withConfigProvider(OllamaConfig.config, ConfigProvider.fromMap(new Map([["OLLAMA_KEEP_ALIVE", value]])))

describe("OllamaKeepAlive", () => {
  it.effect("OLLAMA_KEEP_ALIVE: a default and model=duration overrides, in Ollama's duration syntax", () =>
    Effect.gen(function*() {
      const { keepAlive } = yield* read("5m, llama3.2=1h30m, nomic-embed-text=-1, qwen2.5-coder=0, tiny=90")
      assert.isTrue(Duration.equals(keepAlive.fallback, Duration.minutes(5)))
      assert.deepStrictEqual(
        ["llama3.2", "llama3.2:3b", "nomic-embed-text", "qwen2.5-coder", "tiny", "other"].map((name) =>
          OllamaKeepAlive.toWire(OllamaKeepAlive.forModel(keepAlive, name))
        ),
        [5400, 5400, -1, 0, 90, 300]
      )
      const unset = yield* Effect.withConfigProvider(OllamaConfig.config, ConfigProvider.fromMap(new Map()))
      assert.strictEqual(OllamaKeepAlive.toWire(OllamaKeepAlive.forModel(unset.keepAlive, "any")), 300)
    }))

  it.effect("a tag's own override wins over its name's; a request's own keep-alive wins over both", () =>
    Effect.sync(() => {
      const keepAlive = Either.getOrThrow(OllamaKeepAlive.parse("llama3.2=30m,llama3.2:3b=2m"))
      assert.strictEqual(OllamaKeepAlive.toWire(OllamaKeepAlive.forModel(keepAlive, "llama3.2:3b")), 120)
      assert.strictEqual(OllamaKeepAlive.toWire(OllamaKeepAlive.forModel(keepAlive, "llama3.2:1b")), 1800)
      assert.strictEqual(
        OllamaKeepAlive.toWire(OllamaKeepAlive.forModel(keepAlive, "llama3.2", Duration.seconds(10))),
        10
      )
      assert.isTrue(Option.isNone(OllamaKeepAlive.parseDuration("5 minutes")))
    }))

  it.effect("an invalid entry is named in the error, with the variable", () =>
    Effect.gen(function*() {
      for (const value of ["5x", "5m,10m", "=5m", "llama3.2=soon"]) {
        const error = String(yield* Effect.flip(read(value)))
        assert.include(error, "OLLAMA_KEEP_ALIVE")
        assert.include(error, value.split(",").pop()!)
      }
    }))
})

describe("keep_alive over the simulator", () => {
  it.scoped("every chat and embed carries its model's keep-alive, and a request's own overrides it", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model([sim.url], {
        embedBatchWait: Duration.zero,
        keepAlive: Either.getOrThrow(OllamaKeepAlive.parse("5m,qwen2.5-coder=30m,nomic-embed-text=1h"))
      })
      yield* llm.chat(ask("hi"))
      assert.strictEqual(lastChat(sim).keep_alive, 300)
      yield* llm.chat(ask("hi", { model: "qwen2.5-coder" }))
      assert.strictEqual(lastChat(sim).keep_alive, 1800)
      yield* llm.chat(new ChatRequest({ ...ask("hi", { model: "qwen2.5-coder" }), keepAlive: Duration.seconds(45) }))
      assert.strictEqual(lastChat(sim).keep_alive, 45)
      yield* llm.chat(new ChatRequest({ ...ask("hi"), keepAlive: Duration.infinity }))
      assert.strictEqual(lastChat(sim).keep_alive, -1)
      yield* Stream.runDrain(llm.chatStream(new ChatRequest({ ...ask("hi"), keepAlive: Duration.zero })))
      assert.strictEqual(lastChat(sim).keep_alive, 0)
      yield* llm.embed("nomic-embed-text", ["text"])
      assert.strictEqual(lastEmbedKeepAlive(sim), 3600)
    }))
})
