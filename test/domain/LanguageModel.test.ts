import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { ChatMessage, ChatRequest } from "../../src/domain/Chat.js"
import { LanguageModel } from "../../src/domain/LanguageModel.js"

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
})
