import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import type { ChatChunk, ChatRequest } from "../../../src/domain/Chat.js"
import type * as LanguageModel from "../../../src/domain/LanguageModel.js"
import * as OllamaSimulator from "../../../src/infrastructure/ollama/OllamaSimulator.js"
import { ask, model } from "./SimulatedModel.js"

const oslo = "weather {\"city\": \"Oslo\"}"

/** A streamed chat's text, and the response of its Done chunk. */
const streamed = (llm: LanguageModel.Service, request: ChatRequest) =>
  Effect.map(Stream.runCollect(llm.chatStream(request)), (collected) => {
    const chunks: ReadonlyArray<ChatChunk> = Chunk.toReadonlyArray(collected)
    const last = chunks[chunks.length - 1]
    return {
      text: chunks.flatMap((chunk) => chunk._tag === "Delta" ? [chunk.content] : []).join(""),
      response: last?._tag === "Done" ? last.response : undefined
    }
  })

const callsOf = (
  response: { readonly message: { readonly toolCalls: ReadonlyArray<{ name: string; arguments: object }> } } | undefined
) => response?.message.toolCalls.map((call) => [call.name, call.arguments])

describe("tool calls over the simulator", () => {
  it.scoped("tool calls sent in a chunk before the final one reach the streamed response", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      sim.setFaults("chat", { toolCallsMidStream: true })
      const llm = yield* model([sim.url])
      const { response, text } = yield* streamed(llm, ask(oslo))
      assert.deepStrictEqual(callsOf(response), [["weather", { city: "Oslo" }]])
      assert.strictEqual(text, "")
    }))

  it.scoped("a tool call the model wrote as JSON text becomes a tool call, in chat and in chatStream", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const llm = yield* model([sim.url])
      for (const style of ["json", "fenced", "toolParameters"] as const) {
        sim.setFaults("chat", { toolCallsAsText: style })
        const whole = yield* llm.chat(ask(oslo))
        assert.deepStrictEqual(callsOf(whole), [["weather", { city: "Oslo" }]], style)
        assert.strictEqual(whole.message.content, "", style)
        const { response, text } = yield* streamed(llm, ask(oslo))
        assert.deepStrictEqual(callsOf(response), [["weather", { city: "Oslo" }]], style)
        assert.strictEqual(text, "", `${style}: the call's text is not streamed as text`)
      }
    }))

  it.scoped("JSON text naming a tool that was not offered stays text, streamed whole", () =>
    Effect.gen(function*() {
      const sim = yield* OllamaSimulator.make()
      const launch = "{\n  \"name\": \"launch_rockets\",\n  \"arguments\": {\"when\": \"now\"}\n}"
      sim.setScript(() => ({ content: launch }))
      const llm = yield* model([sim.url])
      const whole = yield* llm.chat(ask("go"))
      assert.deepStrictEqual([whole.message.content, callsOf(whole)], [launch, []])
      const { response, text } = yield* streamed(llm, ask("go"))
      assert.deepStrictEqual([text, response?.message.content, callsOf(response)], [launch, launch, []])
      sim.setFaults("chat", { toolCallsAsText: "json" })
      const notOffered = yield* llm.chat(ask(oslo, { tools: false }))
      assert.deepStrictEqual(callsOf(notOffered), [], "no tools offered: even a known name stays text")
    }))
})
