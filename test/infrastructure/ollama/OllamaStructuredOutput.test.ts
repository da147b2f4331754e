import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, JSONSchema, Schema, Stream } from "effect"
import * as LanguageModel from "../../../src/domain/LanguageModel.js"
import * as ObjectScript from "../../../src/infrastructure/ollama/ObjectScript.js"
import * as OllamaSimulator from "../../../src/infrastructure/ollama/OllamaSimulator.js"
import { ask, lastChat, model } from "./SimulatedModel.js"

const Person = Schema.Struct({ name: Schema.String, age: Schema.Number })

/** A simulator and a model over it with one parallel slot (so a retry that kept its host would hang). */
const setup = (first: unknown, corrected: unknown) =>
  Effect.gen(function*() {
    const sim = yield* OllamaSimulator.make({ script: ObjectScript.correctedOnFeedback(first, corrected) })
    const llm = yield* model([sim.url], { numParallel: 1 })
    return { sim, provide: Effect.provideService(LanguageModel.LanguageModel, llm) }
  })

describe("structured output over the simulator", () => {
  it.scoped("a reply that does not decode is sent back once with what was wrong, and the second decodes", () =>
    Effect.gen(function*() {
      const { provide, sim } = yield* setup({ name: "Ada", age: "thirty-six" }, { name: "Ada", age: 36 })
      const { response, value } = yield* provide(LanguageModel.generateObject(Person, ask("who?", { tools: false })))
      const age: number = value.age // the value is typed by the schema
      assert.deepStrictEqual([value, age], [{ name: "Ada", age: 36 }, 36])
      assert.strictEqual(response.host, sim.url)
      assert.strictEqual(sim.requests("chat"), 2)
      const sent = lastChat(sim)
      assert.deepStrictEqual(sent.format, JSONSchema.make(Person))
      assert.deepStrictEqual(sent.messages.map((message) => message.role), ["user", "assistant", "user"])
      assert.include(sent.messages[1]?.content, "thirty-six")
      assert.include(sent.messages[2]?.content, "age")
    }))

  it.scoped("a reply that fails to decode twice is LlmBadStructuredOutput naming the field", () =>
    Effect.gen(function*() {
      const { provide, sim } = yield* setup({ name: "Ada" }, { name: "Ada", age: "old" })
      const error = yield* Effect.flip(provide(LanguageModel.generateObject(Person, ask("who?", { tools: false }))))
      assert.strictEqual(error._tag, "LlmBadStructuredOutput")
      assert.deepInclude(error, { field: "age", host: sim.url, model: "llama3.2" })
      assert.include(error.message, "age")
      assert.include(error._tag === "LlmBadStructuredOutput" ? error.raw : "", "old")
      assert.strictEqual(sim.requests("chat"), 2)
    }))

  it.scoped("text that is not JSON fails as a whole, with no field", () =>
    Effect.gen(function*() {
      const { provide } = yield* setup("Ada, 36", "I said: Ada, 36")
      const error = yield* Effect.flip(provide(LanguageModel.generateObject(Person, ask("who?", { tools: false }))))
      assert.deepInclude(error, { _tag: "LlmBadStructuredOutput", field: "" })
    }))

  it.scoped("streamed: deltas as they come, a Retry when the first reply does not decode, then Done with the value", () =>
    Effect.gen(function*() {
      const { provide, sim } = yield* setup({ name: "Ada" }, { name: "Ada", age: 36 })
      const chunks = Chunk.toReadonlyArray(
        yield* provide(Stream.runCollect(LanguageModel.streamObject(Person, ask("who?", { tools: false }))))
      )
      const retry = chunks.findIndex((chunk) => chunk._tag === "Retry")
      const retried = chunks[retry]
      assert.deepInclude(retried?._tag === "Retry" ? retried.error : {}, { field: "age" })
      const text = (from: number, to: number) =>
        chunks.slice(from, to).flatMap((chunk) => chunk._tag === "Delta" ? [chunk.content] : []).join("")
      assert.deepStrictEqual(JSON.parse(text(0, retry)), { name: "Ada" })
      assert.isAbove(chunks.slice(0, retry).length, 1, "the text came in pieces")
      assert.deepStrictEqual(JSON.parse(text(retry + 1, chunks.length)), { name: "Ada", age: 36 })
      const done = chunks[chunks.length - 1]
      assert.deepStrictEqual(done?._tag === "Done" ? done.value : undefined, { name: "Ada", age: 36 })
      assert.strictEqual(sim.requests("chat"), 2)
    }))

  it.scoped("streamed: a reply that fails twice ends the stream with LlmBadStructuredOutput", () =>
    Effect.gen(function*() {
      const { provide } = yield* setup({ name: "Ada" }, { name: 7, age: 36 })
      const error = yield* Effect.flip(
        provide(Stream.runDrain(LanguageModel.streamObject(Person, ask("who?", { tools: false }))))
      )
      assert.deepInclude(error, { _tag: "LlmBadStructuredOutput", field: "name" })
    }))
})
