// The README's LLM example, kept identical to it by README.test.ts.
import { Effect } from "effect"
import { Chat, OllamaLanguageModel, OllamaSimulator } from "loom"

const program = Effect.gen(function*() {
  const simulator = yield* OllamaSimulator.make()
  const llm = yield* OllamaLanguageModel.make({ ...OllamaLanguageModel.defaults, hosts: [simulator.url] })
  const reply = yield* llm.chat(
    new Chat.ChatRequest({ model: "llama3.2", messages: [new Chat.ChatMessage({ role: "user", content: "hi" })] })
  )
  // concurrent embeds are batched into one /api/embed request and cached
  const vectors = yield* llm.embed("nomic-embed-text", ["first text", "second text"])
  return { answer: reply.message.content, dimensions: vectors[0]?.length }
})

// With real hosts, provide `OllamaLanguageModel.layerConfig` (reads OLLAMA_HOSTS etc.) and use `LanguageModel`.
export const answer = Effect.scoped(program)
