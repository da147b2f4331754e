/**
 * An in-memory LanguageModel for the agent benches: the first turn asks for two tools,
 * the turn after the tool results answers. No sockets, so the bench measures the loop.
 */
import { Effect, Layer, Stream } from "effect"
import { Chat, LanguageModel } from "loom"

const usage = new Chat.TokenUsage({ prompt: 10, completion: 5 })

const reply = (message: Chat.ChatMessage) =>
  new Chat.ChatResponse({ model: "scripted", message, usage, host: "memory" })

const askTools = reply(
  new Chat.ChatMessage({
    role: "assistant",
    content: "",
    toolCalls: [
      new Chat.LlmToolCall({ name: "wait", arguments: { ms: 10 } }),
      new Chat.LlmToolCall({ name: "wait", arguments: { ms: 10 } })
    ]
  })
)
const answer = reply(new Chat.ChatMessage({ role: "assistant", content: "done" }))

/** The script, as plain data, for the hand-written baseline too. */
export const next = (messages: ReadonlyArray<{ readonly role: string }>) =>
  messages[messages.length - 1]?.role === "tool" ? answer : askTools

export const layer = Layer.succeed(
  LanguageModel.LanguageModel,
  LanguageModel.LanguageModel.of({
    chat: (request: Chat.ChatRequest) => Effect.succeed(next(request.messages)),
    chatStream: (request: Chat.ChatRequest) => Stream.make({ _tag: "Done" as const, response: next(request.messages) }),
    embed: () => Effect.succeed([]),
    models: Effect.succeed([])
  })
)
