import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, JSONSchema, Schema, Stream } from "effect"
import { ChatMessage, ChatRequest } from "../../src/domain/Chat.js"
import { generateObject, LanguageModel, streamObject } from "../../src/domain/LanguageModel.js"

const ask = (content: string, model = "m") =>
  new ChatRequest({ model, messages: [new ChatMessage({ role: "user", content })] })

describe("LanguageModel.layerTest", () => {
  it.effect("a script function answers each request, with the tool calls it asks for", () =>
    Effect.gen(function*() {
      const llm = yield* LanguageModel
      const plain = yield* llm.chat(ask("hello there"))
      assert.deepStrictEqual([plain.message.role, plain.message.content, plain.model], [
        "assistant",
        "echo: hello there",
        "m"
      ])
      assert.deepStrictEqual([plain.usage.prompt, plain.usage.completion], [2, 3])
      const calling = yield* llm.chat(ask("use lookup"))
      assert.deepStrictEqual(calling.message.toolCalls.map((call) => [call.name, call.arguments]), [["lookup", {
        key: "k"
      }]])
    }).pipe(Effect.provide(LanguageModel.layerTest((request) => {
      const content = request.messages[0]!.content
      return content.includes("lookup")
        ? { content: "", toolCalls: [{ name: "lookup", arguments: { key: "k" } }] }
        : { content: `echo: ${content}` }
    }))))

  it.effect("replies are taken in turn; past the last one the model fails with LlmBadResponse", () =>
    Effect.gen(function*() {
      const llm = yield* LanguageModel
      const first = yield* llm.chat(ask("1"))
      const second = yield* llm.chat(ask("2"))
      assert.deepStrictEqual([first.message.content, second.message.content], ["one", "two"])
      assert.strictEqual((yield* Effect.flip(llm.chat(ask("3"))))._tag, "LlmBadResponse")
    }).pipe(Effect.provide(LanguageModel.layerTest([{ content: "one" }, { content: "two" }]))))

  it.effect("a streamed answer comes word by word as Delta chunks, then one Done with the whole response", () =>
    Effect.gen(function*() {
      const llm = yield* LanguageModel
      const chunks = Chunk.toReadonlyArray(yield* Stream.runCollect(llm.chatStream(ask("x"))))
      assert.deepStrictEqual(
        chunks.flatMap((chunk) => chunk._tag === "Delta" ? [chunk.content] : []),
        ["stream ", "these ", "words"]
      )
      const last = chunks[chunks.length - 1]!
      assert.strictEqual(last._tag === "Done" && last.response.message.content, "stream these words")
    }).pipe(Effect.provide(LanguageModel.layerTest(() => ({ content: "stream these words" })))))

  it.effect("embeds deterministically; knows only the models it is given", () =>
    Effect.gen(function*() {
      const llm = yield* LanguageModel
      const [a, b, again] = yield* llm.embed("m", ["alpha", "beta", "alpha"])
      assert.strictEqual(a!.length, 4)
      assert.deepStrictEqual(a, again)
      assert.notDeepEqual(a, b)
      assert.isTrue(a!.every((x) => x >= -1 && x < 1))
      assert.deepStrictEqual((yield* llm.models).map((model) => model.name), ["m"])
      assert.strictEqual((yield* Effect.flip(llm.chat(ask("hi", "other"))))._tag, "ModelNotFound")
      assert.strictEqual((yield* Effect.flip(llm.embed("other", ["x"])))._tag, "ModelNotFound")
    }).pipe(Effect.provide(LanguageModel.layerTest([], { models: ["m"], dimensions: 4 }))))

  const Point = Schema.Struct({ x: Schema.Number, y: Schema.Number })

  it.effect("generateObject: the schema is the request's format; a reply that does not decode is retried once with why", () =>
    Effect.gen(function*() {
      const { value } = yield* generateObject(Point, ask("where?"))
      assert.deepStrictEqual(value, { x: 1, y: 2 })
    }).pipe(Effect.provide(LanguageModel.layerTest((request) => {
      assert.deepStrictEqual(request.format, { ...JSONSchema.make(Point) })
      const feedback = request.messages[2]?.content ?? ""
      return feedback.includes("y") ? { content: "{\"x\": 1, \"y\": 2}" } : { content: "{\"x\": 1}" }
    }))))

  it.effect("generateObject: a reply that fails twice is LlmBadStructuredOutput naming the field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(generateObject(Point, ask("where?")))
      assert.deepInclude(error, { _tag: "LlmBadStructuredOutput", field: "y", model: "m", host: "memory" })
      assert.include(error.message, "y")
      assert.strictEqual((yield* Effect.flip(llmChat))._tag, "LlmBadResponse", "both replies were used")
    }).pipe(
      Effect.provide(LanguageModel.layerTest([{ content: "{\"x\": 1}" }, { content: "{\"x\": 1, \"y\": \"2\"}" }]))
    ))

  it.effect("streamObject: deltas, a Retry when the reply does not decode, then Done with the decoded value", () =>
    Effect.gen(function*() {
      const chunks = Chunk.toReadonlyArray(yield* Stream.runCollect(streamObject(Point, ask("where?"))))
      const tags = chunks.map((chunk) => chunk._tag)
      assert.deepStrictEqual(tags.filter((tag) => tag !== "Delta"), ["Retry", "Done"])
      const text = chunks.flatMap((chunk) => chunk._tag === "Delta" ? [chunk.content] : []).join("")
      assert.strictEqual(text, "{\"x\": 3}{\"x\": 3, \"y\": 4}")
      const done = chunks[chunks.length - 1]!
      assert.deepStrictEqual(done._tag === "Done" && done.value, { x: 3, y: 4 })
    }).pipe(Effect.provide(LanguageModel.layerTest([{ content: "{\"x\": 3}" }, { content: "{\"x\": 3, \"y\": 4}" }]))))
})

const llmChat = Effect.flatMap(LanguageModel, (llm) => llm.chat(ask("more?")))
